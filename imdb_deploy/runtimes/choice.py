"""The default variant of an exported folder, chosen by measurement on the CPU that exported it.

After the parity gate, `export` times every variant that passed on a few of the gate's reviews (`time_variants`)
and `choose` applies the rule (README, "Which runtime runs"):

    default = onnxruntime's own default (dynamic INT8 one review per call, else the fused or plain graph)
              unless another runtime's variant passed the gate, is batch-invariant, and ran at least
              MIN_GAIN times as fast on this CPU; then the fastest such variant.

The choice is between runtimes: onnxruntime's other variants (fp32 batched, int8-batched) stay opt-in as
before. export_report.json records the table, the rule, the CPU's ISA flags (`isa_record`) and the winner as
`default_variant`; `Predictor(variant="auto")` runs it (`recorded_default`), warning when the folder has moved
to a CPU with other ISA flags (`verify --retime` chooses again there).
"""

from __future__ import annotations

import os
import statistics
import time
import warnings
from collections.abc import Callable, Sequence

from imdb_deploy.errors import ISAMismatchWarning
from imdb_deploy.machine import ISA_FLAGS, cpu_flags, cpu_model, physical_cores

# A challenger must beat onnxruntime's default by 10%. A judgement, not a measurement: a few seconds of timing on
# a machine that may be busy cannot resolve a smaller lead (on the shared 2-core Xeon the two passes of one variant
# differed by up to 2x: MiniLM/256, 32 reviews), and a switch for a smaller gain would trade the default runtime
# everyone tests for little.
MIN_GAIN = 1.10

RULE = (
    "onnxruntime's default unless another runtime's variant passed the gate, is batch-invariant and ran "
    f"at least {MIN_GAIN:.2f}x as fast on this CPU; then the fastest such variant"
)

# Reviews of the gate's sample timed per variant, and timed passes (the best counts).
DEFAULT_TIMING_SAMPLES = 16

DEFAULT_TIMING_ROUNDS = 2


def isa_record() -> dict:
    """This CPU as the choice records it: model, physical cores, and the machine.ISA_FLAGS it has."""
    flags = cpu_flags()
    return {
        "cpu_model": cpu_model(),
        "physical_cores": physical_cores(),
        "isa": [flag for flag in ISA_FLAGS if flag in flags],
    }


def recorded_default(onnx_dir: str | os.PathLike, report: dict, available: Sequence[str]) -> str | None:
    """The `default_variant` that export (or `verify --retime`) measured for this folder, if it applies here.

    Warns (ISAMismatchWarning) when the folder's choice was measured on a CPU with other ISA flags, and when
    the recorded variant cannot run here (e.g. the openvino extra is missing); then None (onnxruntime's own
    default runs).

    Args:
        onnx_dir: the exported folder (named in the warnings).
        report: its export_report.json, as read (model_folder.ExportFolder.report; {} when it has none).
        available: the variants that can run here (present in the folder, their runtime installed).
    """
    choice = report.get("runtime_choice") or {}
    variant = report.get("default_variant")
    if not choice or not variant:
        return None  # a folder exported before the choice existed: onnxruntime's default, as it was
    recorded = choice.get("cpu", {}).get("isa")
    here = isa_record()["isa"]
    if recorded is not None and sorted(recorded) != sorted(here):
        warnings.warn(
            f"{onnx_dir}: its default variant {variant!r} was measured on a CPU with {', '.join(recorded) or 'none'} "
            f"of {', '.join(ISA_FLAGS)}; this one has {', '.join(here) or 'none'}. Another variant may be "
            f"faster here: run `imdb-deploy verify {onnx_dir} --retime` to choose again",
            ISAMismatchWarning,
            stacklevel=3,
        )
    if variant not in available:
        warnings.warn(
            f"{onnx_dir}: its default variant {variant!r} cannot run here (missing file or runtime); running "
            "onnxruntime's default instead",
            ISAMismatchWarning,
            stacklevel=3,
        )
        return None
    return variant


def time_variants(
    open_predictor: Callable[[str], object],
    variants: Sequence[str],
    encoded: Sequence[Sequence[int]],
    rounds: int = DEFAULT_TIMING_ROUNDS,
    log: Callable[[str], None] | None = None,
) -> dict[str, dict]:
    """Time each variant on the same tokenized reviews, end to end from token ids, on this CPU.

    Args:
        open_predictor: a variant's name -> its predict.Predictor (anything with `logits_from_ids`).
        variants: the names to time.
        encoded: token ids of the reviews (a sample of the gate's).
        rounds: timed passes after one untimed warm-up call, interleaved across the variants; the fastest counts.
        log: receives progress lines for people.

    Returns:
        Per variant: reviews, tokens, best and median seconds, reviews per second (of the best pass).
    """
    log = log or (lambda message: None)
    tokens = sum(len(ids) for ids in encoded)
    predictors = {name: open_predictor(name) for name in variants}
    for predictor in predictors.values():
        predictor.logits_from_ids(list(encoded[:2]))  # thread pools, kernels, lazy allocations
    # Rounds interleave the variants, so a neighbour's load on a shared machine falls on all of them alike.
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(max(1, rounds)):
        for name, predictor in predictors.items():
            started = time.perf_counter()
            predictor.logits_from_ids(list(encoded))
            seconds[name].append(time.perf_counter() - started)
    table = {}
    for name, predictor in predictors.items():
        best = min(seconds[name])
        table[name] = {
            "reviews": len(encoded),
            "tokens": tokens,
            "seconds": round(best, 4),
            "median_seconds": round(statistics.median(seconds[name]), 4),
            "reviews_per_second": round(len(encoded) / best, 2) if best > 0 else None,
            **getattr(predictor, "runtime", {}),
        }
        log(f"timing: {name} {table[name]['reviews_per_second']} reviews/s")
    return table


def choose(baseline: str, timings: dict[str, dict], eligible: Sequence[str], min_gain: float = MIN_GAIN) -> dict:
    """Apply RULE: onnxruntime's default `baseline`, unless an eligible variant is `min_gain` times as fast.

    Args:
        baseline: onnxruntime's default variant (what "auto" ran before any measurement).
        timings: `time_variants`' table.
        eligible: variants that may replace it (another runtime's, gated, batch-invariant).
        min_gain: the speed ratio a challenger needs.

    Returns:
        {"baseline", "winner", "gain" (winner's speed / baseline's), "reason"}.
    """
    base_speed = (timings.get(baseline) or {}).get("reviews_per_second")
    speeds = {name: timings[name]["reviews_per_second"] for name in eligible if name in timings}
    speeds = {name: speed for name, speed in speeds.items() if speed}
    if not speeds:
        return {"baseline": baseline, "winner": baseline, "gain": 1.0, "reason": "no other runtime's variant gated"}
    best = max(speeds, key=speeds.get)
    if not base_speed:
        return {"baseline": baseline, "winner": best, "gain": None, "reason": f"{baseline} was not timed"}
    # One number for the decision, the record and the line people read: 1.0996 is not "1.10x (< 1.1x)".
    gain = round(speeds[best] / base_speed, 3)
    if gain >= min_gain:
        return {"baseline": baseline, "winner": best, "gain": gain, "reason": f"{gain:.3f}x >= {min_gain}x"}
    reason = f"the fastest other runtime's variant, {best}, ran {gain:.3f}x (< {min_gain}x)"
    return {"baseline": baseline, "winner": baseline, "gain": gain, "reason": reason}


def record(
    baseline: str,
    timings: dict[str, dict],
    eligible: Sequence[str],
    excluded: dict[str, str],
    sample: str,
) -> dict:
    """The `runtime_choice` entry of export_report.json: rule, CPU, timings, what was excluded and why, winner."""
    return {
        "rule": RULE,
        "min_gain": MIN_GAIN,
        "cpu": isa_record(),
        "sample": sample,
        "timings": timings,
        "eligible": list(eligible),
        "excluded": excluded,
        **choose(baseline, timings, eligible),
    }


def measure(
    parity: dict,
    baseline: str,
    other_runtime: Sequence[str],
    open_predictor: Callable[[str], object],
    encoded: Sequence[Sequence[int]],
    sample: str,
    rounds: int = DEFAULT_TIMING_ROUNDS,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Time the variants that passed the gate and choose the default (`record`).

    Args:
        parity: the gate's results (verify.ParityReport.to_dict()).
        baseline: onnxruntime's default variant.
        other_runtime: the variants of another runtime (the challengers).
        open_predictor: a variant's name -> its predict.Predictor.
        encoded: token ids of the reviews to time (a sample of the gate's).
        sample: what the reviews are, for the record.
        rounds: timed passes per variant.
        log: receives progress lines for people.
    """
    passed, excluded = [], {}
    for name, result in parity.get("variants", {}).items():
        invariance = result.get("invariance") or {}
        if not result.get("passed"):
            excluded[name] = "failed the gate"
        elif not (invariance.get("claimed") and invariance.get("holds")):
            excluded[name] = "batch-dependent: never a default"
            passed.append(name)
        else:
            passed.append(name)
    timings = time_variants(open_predictor, passed, encoded, rounds, log)
    for name, row in timings.items():
        gated = (parity["variants"][name].get("runtime") or {}).get("inference_precision")
        if gated and row.get("inference_precision") not in (None, gated):
            excluded[name] = (
                f"gated at {gated}, compiled to {row['inference_precision']} on this CPU: gate it here with "
                "`imdb-deploy verify --record` first"
            )
    eligible = [name for name in passed if name in other_runtime and name not in excluded]
    return record(baseline, timings, eligible, excluded, sample)
