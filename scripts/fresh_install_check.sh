#!/usr/bin/env bash
# Does exactly what the README's quickstart says, on a brand-new clone in a brand-new virtual environment,
# then checks the demo's report:
#
#   bash scripts/fresh_install_check.sh [--tests] [--keep]
#
# 1. git clone of this repository's committed HEAD into a temporary folder (uncommitted changes are not in it);
# 2. the README's two commands there, with no active virtual environment (so setup.sh creates .venv),
#    pip's cache off (PIP_NO_CACHE_DIR=1: nothing of ours comes from a cached wheel) and a fresh HF_HOME
#    (so the offline base model is converted from scratch, as on a new machine);
# 3. checks demo_report.json: every stage present, the parity gate passed, test accuracy >= 0.83;
# 4. with --tests, also the README's test command (.venv/bin/pytest -q);
# 5. prints the time of each command and writes them to fresh_install_check.json in the temporary folder.
#
# The temporary folder is removed at the end unless --keep is given (or a step failed).
# Heavy: wrap it as `flock /tmp/imdb-heavy.lock bash scripts/fresh_install_check.sh` on a shared machine.
set -euo pipefail

SETUP_CMD="bash scripts/setup.sh"
DEMO_CMD=".venv/bin/imdb-deploy demo"
TEST_CMD=".venv/bin/pytest -q"
MIN_ACCURACY="0.83"

RUN_TESTS=0
KEEP=0
for arg in "$@"; do
    case "$arg" in
        --tests) RUN_TESTS=1 ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown option $arg (use --tests, --keep)" >&2; exit 2 ;;
    esac
done

REPO="$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/imdb-deploy-fresh.XXXXXX")"
CLONE="$WORK/imdb-deploy"
log() { printf '[fresh-install] %s\n' "$*" >&2; }
failed() { log "FAILED at: $1 (left in $WORK for inspection)"; exit 1; }

log "cloning $(git -C "$REPO" rev-parse --short HEAD) of $REPO into $CLONE"
git clone --quiet "$REPO" "$CLONE"
cd "$CLONE"

# A brand-new machine: no active venv, no pip cache, an empty Hugging Face cache.
unset VIRTUAL_ENV
export PIP_NO_CACHE_DIR=1
export HF_HOME="$WORK/hf-home"
export PATH="$(printf '%s' "$PATH" | tr ':' '\n' | grep -v '/\.venv/bin$' | paste -sd: -)"

timed() {  # timed NAME COMMAND...: run, keep its output in $WORK/NAME.log, record seconds in SECONDS_NAME
    local name="$1"; shift
    local start end
    log "running: $* (output in $WORK/$name.log)"
    start=$(date +%s.%N)
    # stderr stays on the terminal too, so progress shows throughout
    if ! "$@" > >(tee "$WORK/$name.log") 2> >(tee -a "$WORK/$name.log" >&2); then
        failed "$*"
    fi
    end=$(date +%s.%N)
    printf -v "SECONDS_${name}" '%s' "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')"
    local var="SECONDS_${name}"
    log "$name took ${!var} s"
}

timed setup $SETUP_CMD
timed demo $DEMO_CMD
if [[ "$RUN_TESTS" == "1" ]]; then
    timed tests $TEST_CMD
fi

REPORT="$CLONE/runs/demo/demo_report.json"
.venv/bin/python - "$REPORT" "$MIN_ACCURACY" "$WORK/fresh_install_check.json" \
    "${SECONDS_setup}" "${SECONDS_demo}" "${SECONDS_tests:-}" "$(git rev-parse HEAD)" <<'EOF' || failed "report check"
import json, sys
from pathlib import Path

report_path, min_accuracy, out, setup_s, demo_s, tests_s, commit = sys.argv[1:]
report = json.loads(Path(report_path).read_text())
problems = []
stages = ("train", "export", "verify", "predict", "bench")
missing = [s for s in stages if s not in report.get("stages", {})]
if missing:
    problems.append(f"stages missing from the report: {', '.join(missing)}")
if not report.get("stages", {}).get("verify", {}).get("passed"):
    problems.append("the parity gate did not pass")
accuracy = report.get("accuracy")
if accuracy is None or accuracy < float(min_accuracy):
    problems.append(f"test accuracy {accuracy} < {min_accuracy}")
for name, path in report.get("artifacts", {}).items():
    if not Path(path).exists():
        problems.append(f"artifact {name} missing: {path}")
result = {
    "commit": commit,
    "setup_seconds": float(setup_s),
    "demo_seconds": float(demo_s),
    "tests_seconds": float(tests_s) if tests_s else None,
    "demo_total_seconds": report.get("total_seconds"),
    "base_model": report.get("base_model"),
    "accuracy": accuracy,
    "pytorch_test_accuracy": report.get("stages", {}).get("train", {}).get("test_accuracy"),
    "stage_seconds": {s: report["stages"][s].get("seconds") for s in stages if s in report.get("stages", {})},
    "problems": problems,
}
Path(out).write_text(json.dumps(result, indent=2) + "\n")
print(json.dumps(result, indent=2))
if problems:
    sys.exit("; ".join(problems))
EOF

log "PASSED: setup ${SECONDS_setup} s, demo ${SECONDS_demo} s${SECONDS_tests:+, tests ${SECONDS_tests} s}"
if [[ "$KEEP" == "1" ]]; then
    log "kept $WORK"
else
    rm -rf "$WORK"
fi
