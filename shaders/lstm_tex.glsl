// The element type and the input bindings of the LSTM step kernels (lstm_seq*.comp).
// LSTM_VEC4 (the *_vec4 modules): an invocation takes four neighbouring units, every buffer read
// and written as vec4. LSTM_TEX (the *_tex modules): the read-only inputs, and a view of the
// buffer a step reads before it writes, are uniform texel buffers (R32F, RGBA32F with LSTM_VEC4)
// over their whole blocks, their offsets counted from the block's start (lib/ops/lstm.c adds
// vkg_texel_base), for devices that fetch texels faster than they load storage buffers
// (lavapipe: a storage load is a loop over the lanes).
#ifdef LSTM_VEC4
#define V vec4
#define W 4u
#else
#define V float
#define W 1u
#endif

#ifdef LSTM_TEX
#define INPUT(b, name) layout(binding = b) uniform samplerBuffer name
#ifdef LSTM_VEC4
#define LOAD(buf, i) texelFetch(buf, int(i))
#else
#define LOAD(buf, i) texelFetch(buf, int(i)).x
#endif
#else
#define INPUT(b, name) layout(std430, binding = b) readonly buffer name##_ { V name[]; }
#define LOAD(buf, i) buf[i]
#endif
