#!/usr/bin/env bash
# Download, here, the wheels that scripts/gpu_check.sh installs on the GPU machine (which reaches no registry).
#
# Why these: the GPU image (see the device tool's KINDS.md) already holds torch 2.11, accelerate 1.15.0,
# numpy, pandas, pyarrow, scikit-learn, safetensors, regex, pyyaml, requests, tqdm, filelock and hf-xet, and
# a transformers 5.x with huggingface_hub 1.x and tokenizers 0.23.2. imdb-deploy pins transformers 5.23.0, which
# needs huggingface_hub >= 1.31 and tokenizers >= 0.23.1, so the trio travels at this project's pins, with what
# huggingface_hub 2.x and transformers 5.23 add that the image may lack (httpx2, httpcore2, typer, shellingham).
# Installed with --no-deps on the image: anything else they need is the image's.
#
# Usage (repo root):  bash scripts/gpu_wheels.sh        # writes .whl/ (ignored by .gitignore)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
WHEELS=(transformers==5.23.0 tokenizers==0.23.3 huggingface_hub==2.4.0 httpx2==2.16.2 httpcore2==2.16.2 typer==0.29.2 shellingham==1.5.4)


mkdir -p .whl
git check-ignore -q .whl || echo /.whl/ >>.git/info/exclude
"$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"

# One version of each package, or the install there stops: drop any other wheel left from earlier pins.
for wheel in .whl/*.whl; do
    keep=0
    for spec in "${WHEELS[@]}"; do
        name=${spec%%==*}
        version=${spec#*==}
        case "$(basename "$wheel")" in "${name}-${version}-"*) keep=1 ;; esac
    done
    [[ $keep == 1 ]] || { echo "removing stale $wheel" >&2; rm -f "$wheel"; }
done
du -sh .whl >&2
