#!/usr/bin/env bash
# The full-data recipe, one command, resumable:
#
#   bash scripts/full_imdb.sh [DATA] [OUT]
#
#   DATA  the IMDb data: `imdb` for the Hub (default), or a local folder with train/test files (see train --help)
#   OUT   where the model goes (default runs/full-minilm); its ONNX export goes to OUT-onnx
#   BASE  (environment) the encoder to fine-tune (default: the offline 6-layer MiniLM in DistilBERT form that
#         `imdb-deploy convert-bert` prepares; distilbert-base-uncased where the Hub is reachable)
#
# 1. trains on all of train (10% carved off for validation, best epoch kept), 256 tokens head+tail, 2 epochs,
#    lr 5e-5, a checkpoint every 200 steps; run it again after an interruption and it resumes (--resume);
# 2. scores all 25,000 test reviews (train does that at the end: metrics.json);
# 3. exports to ONNX (fp32, fused, INT8) with the parity gate on all 25,000 test reviews (export_report.json).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${1:-imdb}"
OUT="${2:-runs/full-minilm}"
CLI="${IMDB_DEPLOY:-imdb-deploy}"
command -v "$CLI" >/dev/null || CLI="$ROOT/.venv/bin/imdb-deploy"
BASE="${BASE:-$("$CLI" convert-bert)}"

if [[ -f "$OUT/train_config.json" ]]; then
    echo "[full_imdb] $OUT is complete: skipping training" >&2
else
    resume=()
    [[ -f "$OUT/checkpoints/run_config.json" ]] && resume=(--resume)
    "$CLI" train --model "$BASE" --data "$DATA" --output "$OUT" \
        --max-length 256 --epochs 2 --lr 5e-5 --checkpoint-every 200 ${resume[@]+"${resume[@]}"}
fi
"$CLI" export "$OUT" --output "$OUT-onnx" --quantize --overwrite --data "$DATA" --verify-samples all
