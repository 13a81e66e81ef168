# shellcheck shell=bash
# CMake flags for a portable llama.cpp build: AVX2/FMA/F16C without AVX-512 or AMX. llama.cpp's
# default build targets the build machine's own CPU; on CPUs that advertise AMX (Intel Sapphire
# Rapids and later) inside virtual machines or sandboxes that do not let programs use it, that
# build dies with SIGILL at the first token. Sourced by scripts/setup and scripts/build-llama-server.
LLAMA_CPP_PORTABLE_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
