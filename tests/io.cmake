# I/O and dataset tests (IDX, Fashion-MNIST, text corpus, CIFAR-10, safetensors) and their
# libFuzzer targets. None needs a Vulkan device. Included by tests/CMakeLists.txt; works alone.
if(NOT TARGET PkgConfig::CRITERION)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(CRITERION REQUIRED IMPORTED_TARGET criterion)
endif()

foreach(name idx datasets cifar safetensors)
  add_executable(test_${name} ${CMAKE_CURRENT_LIST_DIR}/test_${name}.c)
  target_link_libraries(test_${name} PRIVATE vkgrad_datasets vkgrad PkgConfig::CRITERION ZLIB::ZLIB m)
  target_include_directories(test_${name} PRIVATE ${CMAKE_CURRENT_LIST_DIR})
  add_test(NAME ${name} COMMAND test_${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT 120)
  if(DEFINED VKG_TEST_ENV)
    set_tests_properties(${name} PROPERTIES ENVIRONMENT "${VKG_TEST_ENV}")
  endif()
endforeach()

# Fuzz targets (see tests/fuzz/README.md). The parsers' sources are compiled into each target,
# so that they carry libFuzzer's coverage instrumentation; nothing else of libvkgrad is needed.
if(VKG_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "VKG_FUZZ=ON needs clang: configure with CC=clang-14")
  endif()
  set(VKG_FUZZ_FLAGS -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer -g)
  set(fuzz_idx_sources ${PROJECT_SOURCE_DIR}/datasets/idx.c)
  set(fuzz_idx_libs ZLIB::ZLIB)
  set(fuzz_safetensors_sources ${PROJECT_SOURCE_DIR}/lib/io/safetensors.c)
  set(fuzz_safetensors_libs PkgConfig::CJSON)
  foreach(target idx safetensors)
    add_executable(fuzz_${target} ${CMAKE_CURRENT_LIST_DIR}/fuzz/fuzz_${target}.c
      ${fuzz_${target}_sources} ${PROJECT_SOURCE_DIR}/lib/runtime/error.c)
    target_include_directories(fuzz_${target} PRIVATE ${PROJECT_SOURCE_DIR}/datasets
      ${PROJECT_SOURCE_DIR}/lib ${PROJECT_SOURCE_DIR}/lib/include)
    target_link_libraries(fuzz_${target} PRIVATE ${fuzz_${target}_libs})
    target_compile_options(fuzz_${target} PRIVATE ${VKG_FUZZ_FLAGS})
    target_link_options(fuzz_${target} PRIVATE ${VKG_FUZZ_FLAGS})
    # Smoke test: each seed input once (files, not the directory, so nothing is written there).
    file(GLOB seeds ${CMAKE_CURRENT_LIST_DIR}/fuzz/corpus/${target}/*)
    add_test(NAME fuzz_${target}_seeds COMMAND fuzz_${target} ${seeds})
    set_tests_properties(fuzz_${target}_seeds PROPERTIES TIMEOUT 60)
  endforeach()
endif()
