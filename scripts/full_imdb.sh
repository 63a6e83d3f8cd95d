#!/usr/bin/env bash
# The full-data recipe, teacher and student, one command, resumable:
#
#   bash scripts/full_imdb.sh [DATA] [OUT]
#
#   DATA  the IMDb data: `imdb` for the Hub (default), or a local folder with train/test (and unsupervised) files
#   OUT   where the teacher goes (default runs/full-minilm); its export goes to OUT-onnx, the student to
#         OUT-student (and OUT-student-onnx), the frontier bench of both to OUT-frontier
#   BASE  (environment) the encoder to fine-tune (default: the offline 6-layer MiniLM in DistilBERT form that
#         `imdb-deploy convert-bert` prepares; distilbert-base-uncased where the Hub is reachable)
#   LAYERS (environment) the student's layers (default 3: half the teacher's)
#   BENCH_SAMPLES (environment) reviews the frontier bench scores (default 2000; all: the whole test split)
#
# 1. teacher: trains on all of train (10% carved off for validation, best epoch kept), 256 tokens head+tail,
#    2 epochs, lr 5e-5, a checkpoint every 200 steps; run the script again after an interruption and it resumes;
# 2. exports it (fp32, fused, INT8, OpenVINO where installed) with the parity gate on all 25,000 test reviews;
# 3. distils a LAYERS-layer student from it on the labelled training split and the 50,000 unlabelled reviews, the
#    teacher's outputs computed once by the default variant of its export (cached: a resumed run reuses them);
# 4. exports the student with the gate on all 25,000 test reviews;
# 5. benches both exports on the same BENCH_SAMPLES test reviews, with the TF-IDF baseline: the frontier;
# 6. writes OUT-accuracy.json (scripts/accuracy_table.py): the gate's accuracy, F1, precision and recall of both
#    models, PyTorch and default variant, with the frontier run's reviews/s beside them. To publish it as the
#    README's Results table (from a clean checkout, cores quiet):
#      python scripts/record_result.py full-imdb --kind accuracy --result OUT-accuracy.json --quiet-cores --headline \
#          -- python scripts/accuracy_table.py teacher=OUT-onnx student=OUT-student-onnx \
#             --bench OUT-frontier/bench.json -o OUT-accuracy.json
#      python scripts/make_docs.py
# Every step whose output is complete is skipped, so the script can be run again until it finishes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${1:-imdb}"
OUT="${2:-runs/full-minilm}"
CLI="${IMDB_DEPLOY:-imdb-deploy}"
command -v "$CLI" >/dev/null || CLI="$ROOT/.venv/bin/imdb-deploy"
BASE="${BASE:-$("$CLI" convert-bert)}"
LAYERS="${LAYERS:-3}"
BENCH_SAMPLES="${BENCH_SAMPLES:-2000}"
STUDENT="$OUT-student"

resume_flag() { [[ -f "$1/checkpoints/run_config.json" ]] && echo --resume || true; }
step() { printf '[full_imdb] %s\n' "$*" >&2; }

if [[ -f "$OUT/train_config.json" ]]; then
    step "$OUT is complete: skipping training"
else
    # shellcheck disable=SC2046
    "$CLI" train --model "$BASE" --data "$DATA" --output "$OUT" \
        --max-length 256 --epochs 2 --lr 5e-5 --checkpoint-every 200 $(resume_flag "$OUT")
fi
[[ -f "$OUT-onnx/export_report.json" ]] ||
    "$CLI" export "$OUT" --output "$OUT-onnx" --quantize --data "$DATA" --verify-samples all
if [[ -f "$STUDENT/train_config.json" ]]; then
    step "$STUDENT is complete: skipping distillation"
else
    # shellcheck disable=SC2046
    "$CLI" distill "$OUT" --teacher-onnx "$OUT-onnx" --data "$DATA" --layers "$LAYERS" --output "$STUDENT" \
        --checkpoint-every 200 $(resume_flag "$STUDENT")
fi
[[ -f "$STUDENT-onnx/export_report.json" ]] ||
    "$CLI" export "$STUDENT" --output "$STUDENT-onnx" --quantize --data "$DATA" --verify-samples all
[[ -f "$OUT-frontier/bench.json" ]] ||
    "$CLI" bench -m "$OUT-onnx" -m "$STUDENT-onnx" --data "$DATA" --samples "$BENCH_SAMPLES" --output "$OUT-frontier"
PYTHON="$(dirname "$(command -v "$CLI")")/python"
"$PYTHON" "$ROOT/scripts/accuracy_table.py" "$(basename "$OUT-onnx")=$OUT-onnx" "$(basename "$STUDENT-onnx")=$STUDENT-onnx" \
    --bench "$OUT-frontier/bench.json" -o "$OUT-accuracy.json"
step "done: $OUT-onnx, $STUDENT-onnx, $OUT-frontier/bench.json, $OUT-accuracy.json"
