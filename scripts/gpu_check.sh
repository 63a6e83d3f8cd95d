#!/usr/bin/env bash
# Device check: bf16 training throughput of distilbert-base (DistilBertConfig(), random weights) on
# real IMDb reviews at max length 512 through accelerate, the full recipe's time (25,000 reviews, 2 epochs,
# batch 16) extrapolated from it, and PyTorch inference throughput fp32 / TF32 / bf16. One JSON file out.
# Sized for well under 8 minutes on one H200 (about 2 expected: the time limit below stops it at 7).
#
# 1. Here, once (needs the data and tokenizer, --source and --tokenizer of gpu_check.py prepare, and PyPI; writes the ignored folders .whl/ and .gpu_data/, about 22 MiB):
#        bash scripts/gpu_check.sh prepare
# 2. The device call (the GPU machine reaches no registry: the wheels and the reviews travel as carried paths):
#        run(command="bash scripts/gpu_check.sh", carry=[".whl", ".gpu_data"], timeout_s=540)
#    then give_back. Figures: $OUT/gpu_check.json (and the log $OUT/gpu_check.log); the end of the output
#    is a short table. A failed or stopped step still leaves the JSON, with the error.
# 3. On a CPU, the logic alone (tiny model, seconds):
#        PYTHON=.venv/bin/python bash scripts/gpu_check.sh --smoke --data DIR --out /tmp/gpu_check.json
#
# Environment: PYTHON (default python3, the GPU image's), GPU_CHECK_WHEELS (default .whl), GPU_CHECK_SITE
# (default /tmp/site), GPU_CHECK_TIMEOUT (seconds, default 420). Other arguments go to `gpu_check.py measure`.
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ ${1:-} == prepare ]]; then
    shift
    bash scripts/gpu_wheels.sh || exit
    .venv/bin/python scripts/gpu_check.py prepare "$@" || exit
    git check-ignore -q .gpu_data || echo /.gpu_data/ >>.git/info/exclude
    du -sh .whl .gpu_data >&2
    # What the device call sends: tracked and untracked-not-ignored files plus the carried folders, 64 MiB at most.
    tree=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
    total=$((tree + $(du -sbc .whl .gpu_data | tail -1 | cut -f1)))
    echo "the device call would send $((total / 1048576)) MiB (limit 64)" >&2
    if ((total > 64 * 1048576)); then
        echo "over the limit; the largest files that would travel:" >&2
        git ls-files -co --exclude-standard -z | xargs -0 du -b 2>/dev/null | sort -n | tail -5 >&2
        exit 1
    fi
    exit 0
fi

PYTHON=${PYTHON:-python3}
WHEELS=${GPU_CHECK_WHEELS:-.whl}
SITE=${GPU_CHECK_SITE:-/tmp/site}
notes=()
# The image holds an older transformers 5 / huggingface_hub 1 / tokenizers 0.23.2; imdb-deploy pins transformers
# 5.23.0, so the pinned trio travels in .whl (scripts/gpu_wheels.sh says why) and goes first on the path.
if compgen -G "$WHEELS/*.whl" >/dev/null; then
    if "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        "$WHEELS"/*.whl; then
        export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
        notes+=(--note "installed from $WHEELS: $(cd "$WHEELS" && echo *.whl)")
    else
        notes+=(--note "installing the wheels in $WHEELS failed; ran with the image's own packages")
    fi
else
    notes+=(--note "no wheels in $WHEELS; ran with the interpreter's own packages")
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 PYTHONUNBUFFERED=1
log=${OUT:+$OUT/gpu_check.log}
# SIGTERM at the limit lets the script record where it stopped and write the JSON; KILL 20 s later if not.
timeout --kill-after=20 "${GPU_CHECK_TIMEOUT:-420}" "$PYTHON" scripts/gpu_check.py measure "${notes[@]}" "$@" 2>&1 |
    tee ${log:+"$log"}
