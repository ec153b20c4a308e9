#!/usr/bin/env python3
"""Writes the small seed corpora for the IDX and safetensors fuzz targets (each file < 4 KB).
Run from tests/fuzz: python3 make_corpus.py"""
import gzip, json, os, struct

def put(path, data):
    assert len(data) < 4096, path
    with open(path, "wb") as f:
        f.write(data)

# IDX: u8 (2,3,3), f32 (4,), i16 (2,2), the same u8 gzip-compressed, and malformed ones.
u8 = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2, 3, 3) + bytes(range(18))
put("corpus/idx/u8_2x3x3.idx", u8)
put("corpus/idx/f32_4.idx", bytes([0, 0, 0x0D, 1]) + struct.pack(">I4f", 4, 1.0, -2.5, 0.0, 3e38))
put("corpus/idx/i16_2x2.idx", bytes([0, 0, 0x0B, 2]) + struct.pack(">2I4h", 2, 2, 1, -1, 300, -300))
put("corpus/idx/u8_2x3x3.idx.gz", gzip.compress(u8, mtime=0))
put("corpus/idx/bad_magic.idx", bytes([1, 0, 0x08, 1]) + struct.pack(">I", 2) + b"ab")
put("corpus/idx/overflow_dims.idx", bytes([0, 0, 0x0E, 8]) + struct.pack(">8I", *[0xFFFFFFFF] * 8))
put("corpus/idx/short_data.idx", bytes([0, 0, 0x08, 2]) + struct.pack(">2I", 28, 28) + bytes(10))
put("corpus/idx/truncated.idx.gz", gzip.compress(u8, mtime=0)[:-6])

# safetensors: compact header padded with spaces to 8, data after it.
def st(entries, data, meta=None, pad=True):
    hdr = {}
    if meta is not None:
        hdr["__metadata__"] = meta
    hdr.update(entries)
    text = json.dumps(hdr, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data

w = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
ok = st({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
         "b": {"dtype": "F16", "shape": [2], "data_offsets": [24, 28]},
         "ids": {"dtype": "I64", "shape": [1], "data_offsets": [28, 36]},
         "e": {"dtype": "U8", "shape": [0, 5], "data_offsets": [36, 36]}},
        w + b"\x00\x3c\x00\x40" + struct.pack("<q", -7), meta={"format": "pt"})
put("corpus/safetensors/valid.safetensors", ok)
put("corpus/safetensors/scalar_bf16_i32.safetensors",
    st({"s": {"dtype": "BF16", "shape": [], "data_offsets": [0, 2]},
        "i": {"dtype": "I32", "shape": [1, 1], "data_offsets": [2, 6]}}, b"\x80\x3f\x01\x00\x00\x00"))
put("corpus/safetensors/overlap.safetensors",
    st({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
        "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}, bytes(6)))
put("corpus/safetensors/bad_dtype.safetensors",
    st({"a": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}}, bytes(8)))
dup = b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}'
dup += b" " * (-len(dup) % 8)
put("corpus/safetensors/duplicate.safetensors", struct.pack("<Q", len(dup)) + dup + b"xy")
put("corpus/safetensors/header_past_eof.safetensors", struct.pack("<Q", 1000) + b"{}")
