"""The parity gate: does each exported ONNX variant answer like its PyTorch original on real reviews?

`check_parity` runs the PyTorch model (evaluation.torch_logits) and every ONNX variant (through
predict.Predictor, the same code that serves predictions) on the same labelled reviews, tokenized by the
same `tokenization.encode` with the folder's settings, and compares per variant: accuracy and its change,
label agreement, max and mean absolute probability difference, and the reviews whose label flipped.
`export` runs it before it writes a folder; `imdb-deploy verify ONNX_DIR` runs it alone. A failed gate is
an error (exit 1), never a warning.

It also checks batch invariance (`check_invariance`): a subset of the same reviews is scored again one
review per call and compared with the gate's batched run. A variant that claims invariance
(artifacts.VARIANT_BATCHING) fails the gate if a label flips or a probability moves by more than
INVARIANCE_MAX_PROB_DIFF; a batch-dependent variant (int8-batched) has its numbers recorded, not gated.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from imdb_deploy.artifacts import (
    EXPORT_REPORT,
    ONNX_VARIANTS,
    read_json,
)
from imdb_deploy.errors import ConfigError, ModelLoadError, ParityError
from imdb_deploy.model_folder import (
    GRAPH_SUFFIXES,
    ExportFolder,
    checksummed_names,
    file_checksums,
    graph_companions,
    open_folder,
)
from imdb_deploy.openvino_runtime import LOSSY_PRECISIONS, OPENVINO_VARIANTS, unavailable_reason

# Every variant the gate checks (onnxruntime's and OpenVINO's), and the pseudo-variant whose thresholds an
# openvino-fp32 gets when the CPU compiles it to a lossy precision (bf16 on AVX512-BF16/AMX CPUs).
GATED_VARIANTS = (*ONNX_VARIANTS, *OPENVINO_VARIANTS)
OPENVINO_LOSSY = "openvino-bf16"


@dataclass(frozen=True)
class Thresholds:
    """What one ONNX variant must achieve against PyTorch. Fractions, not percentages.

    Attributes:
        min_agreement: share of reviews whose predicted label equals PyTorch's.
        max_accuracy_drop: PyTorch accuracy minus the variant's, at most (a variant that scores higher
            is not a defect).
        drop_noise_sigmas: a drop also has to exceed this many standard errors of its own sampling noise
            to fail. Only flipped reviews move accuracy, each by 1/n either way, so with f flips the drop of
            a variant that is no worse than PyTorch has standard error sqrt(f)/n (McNemar's test). Without
            this, a neutral INT8 model with 10 flips among 1,000 reviews would fail a 0.5-point budget by
            chance about one time in twenty. 0 turns the allowance off.
        max_prob_diff: largest absolute difference of any class probability on any review; None: not gated.
        max_mean_prob_diff: mean absolute difference of the probabilities; None: not gated.
    """

    min_agreement: float = 1.0
    max_accuracy_drop: float = 0.0
    drop_noise_sigmas: float = 0.0
    max_prob_diff: float | None = None
    max_mean_prob_diff: float | None = None

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "drop_noise_sigmas":
                if not (isinstance(value, (int, float)) and 0 <= value <= 10):
                    raise ConfigError(f"{item.name}={value!r}: use a number of standard errors from 0 to 10")
            elif value is not None and not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise ConfigError(f"{item.name}={value!r}: use a fraction from 0 to 1")

    def allowed_drop(self, flips: int, samples: int) -> float:
        """The accuracy drop this variant may show: the budget, or the noise of `flips` flips if larger."""
        return max(self.max_accuracy_drop, self.drop_noise_sigmas * float(np.sqrt(flips)) / max(samples, 1))


# fp32 and the fused graph compute the same function as PyTorch up to float32 rounding (about 1e-6 on the
# real-data check: docs/export.md, "Why the default INT8 runs one review per call"); 1e-4 and 1e-5 are strict
# yet far above rounding, and every label must agree.
# fp16 (the GPU's O4 graph) is bounded like a slightly noisier fp32 until measured ("fp16" below).
DEFAULT_EXACT = Thresholds(min_agreement=1.0, max_accuracy_drop=0.0, max_prob_diff=1e-4, max_mean_prob_diff=1e-5)
# INT8 bounds, set from the real-data check (the MiniLM-L6 fine-tuned on 2,000 reviews, scored on 2,000 IMDb
# test reviews; its table is in docs/export.md, "Why the default INT8 runs one review per call"). A review near
# 0.5 can move far, so agreement is what counts there and max |dp| is not gated.
# - min_agreement 0.98 allows about twice the disagreement measured there: several binomial standard errors
#   at the default sample sizes, so a sound model does not fail by chance while a broken one (<98%) does.
# - max_accuracy_drop 0.5 points is the release budget, widened to 2 standard errors of the flip noise
#   when the sample is too small to resolve 0.5 points (drop_noise_sigmas).
# - max_mean_prob_diff 0.02 is about twice the measured mean. Quantization noise moves probabilities most near
#   0.5, and a lightly trained model sits there often, so a confident model measures lower.
# The same check separates the INT8 choices (research/README.md, bench_int8_research.py --stage accuracy):
# per-tensor weights fail it; per-channel on the unfused graph passes with less margin than on the fused one.
# INT8 outputs also depend a little on batch composition (DynamicQuantizeLinear takes one activation scale
# per batch), so the gate runs the ONNX variants through Predictor, batched exactly as served.
DEFAULT_INT8 = Thresholds(
    min_agreement=0.98, max_accuracy_drop=0.005, drop_noise_sigmas=2.0, max_prob_diff=None, max_mean_prob_diff=0.02
)
# O3 replaces exact GELU by its tanh approximation: no longer the same function, so the fused graph gets
# bounds of its own, about five times what it moved on the real-data check.
APPROX_GELU = Thresholds(
    min_agreement=0.995, max_accuracy_drop=0.002, drop_noise_sigmas=2.0, max_prob_diff=1e-2, max_mean_prob_diff=1e-3
)
DEFAULT_THRESHOLDS: dict[str, Thresholds] = {
    "fp32": DEFAULT_EXACT,
    "optimized": DEFAULT_EXACT,
    "int8": DEFAULT_INT8,
    "int8-batched": DEFAULT_INT8,
    "fp16": Thresholds(min_agreement=0.995, max_accuracy_drop=0.002, max_prob_diff=2e-2, max_mean_prob_diff=2e-3),
    # nncf static INT8 is INT8 like any other; OpenVINO's fp32 graph is exact at f32 and gated like INT8
    # where the CPU plugin runs it in bf16 (8 significant bits: a lossy variant).
    "openvino-int8": DEFAULT_INT8,
    "openvino-fp32": DEFAULT_EXACT,
    OPENVINO_LOSSY: DEFAULT_INT8,
}


# The variants that compute PyTorch's own function in float32 (O3's tanh GELU is an approximation of it, still
# float32): VerifyConfig.exact_samples bounds how many reviews they are scored on.
FP32_GRAPHS = ("fp32", "optimized")


def default_thresholds(optimize_level: str | None = None) -> dict[str, Thresholds]:
    """DEFAULT_THRESHOLDS, with the fused graph's bounds loosened to APPROX_GELU for level O3."""
    thresholds = dict(DEFAULT_THRESHOLDS)
    if optimize_level == "O3":
        thresholds["optimized"] = APPROX_GELU
    return thresholds


def parse_threshold_overrides(items: Iterable[str], base: dict[str, Thresholds] | None = None) -> dict[str, Thresholds]:
    """Thresholds from `base` (default_thresholds()) with `VARIANT.FIELD=VALUE` overrides applied.

    Args:
        items: e.g. ["int8.min_agreement=0.97", "fp32.max_prob_diff=none"].
        base: the thresholds to start from.

    Raises:
        ConfigError: quoting the item that is malformed, or names an unknown variant, field or value.
    """
    thresholds = dict(base or default_thresholds())
    names = [item.name for item in fields(Thresholds)]
    for item in items:
        key, sep, value = item.partition("=")
        variant, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise ConfigError(f"threshold {item!r}: write VARIANT.FIELD=VALUE, e.g. int8.min_agreement=0.97")
        if variant not in (*GATED_VARIANTS, OPENVINO_LOSSY):
            raise ConfigError(
                f"threshold {item!r}: variant {variant!r} is not one of {', '.join((*GATED_VARIANTS, OPENVINO_LOSSY))}"
            )
        if name not in names:
            raise ConfigError(f"threshold {item!r}: field {name!r} is not one of {', '.join(names)}")
        text = value.strip().lower()
        try:
            number = None if text in ("none", "off") else float(text)
        except ValueError as exc:
            raise ConfigError(f"threshold {item!r}: {value!r} is not a number (or none)") from exc
        if number is None and name in ("min_agreement", "max_accuracy_drop", "drop_noise_sigmas"):
            raise ConfigError(f"threshold {item!r}: {name} needs a number")
        thresholds[variant] = replace(thresholds[variant], **{name: number})
    return thresholds


@dataclass
class VerifyConfig:
    """Settings of the parity gate.

    Attributes:
        data: labelled reviews (see imdb_deploy.data); "imdb" is the Hub dataset.
        split: the split to score.
        samples: a stratified sample of this many reviews (None: the whole split). 1,000 reviews resolve a
            1% disagreement rate to about +-0.6 points; use 2,000 or all for a release.
        seed: seed of the sample.
        variants: the ONNX variants to check; None checks every variant the folder holds.
        thresholds: per variant; None uses default_thresholds() for the folder's optimization level
            (variants missing from a dict use their defaults too).
        threshold_overrides: "VARIANT.FIELD=VALUE" items applied on top, e.g. "int8.min_agreement=0.97".
        optimize_level: the fused graph's optimization level; None reads it from export_report.json.
        provider: "cpu" or "cuda" for the ONNX sessions; INT8 is skipped on cuda (CPU-only ops).
        batch_size: reviews per PyTorch forward pass.
        flips_listed: how many label flips to list per variant (largest probability change first).
        invariance_samples: reviews of the sample scored again one per call for the batch-invariance
            check. 64 keeps the check to seconds (one call per review) while a batch-dependent variant
            shows itself: batched dynamic INT8 moves most reviews' probabilities (research/README.md,
            batch_invariance.py).
        exact_samples: most reviews of the sample the fp32 graphs (FP32_GRAPHS) are scored on, a seeded
            subset; None: the whole sample. They compute PyTorch's function up to float rounding, so a wrong
            conversion shows on every review and 2,000 find it as surely as 25,000, while on the full test
            split they are the slowest part of the gate (about three times INT8's time per review;
            docs/export.md). PyTorch and the INT8 variants, whose accuracy is what the gate is for, always get
            the whole sample.
    """

    data: str = "imdb"
    split: str = "test"
    samples: int | None = 1000
    seed: int = 42
    variants: tuple[str, ...] | None = None
    thresholds: dict[str, Thresholds] | None = None
    threshold_overrides: tuple[str, ...] = ()
    optimize_level: str | None = None
    provider: str = "cpu"
    batch_size: int = 32
    flips_listed: int = 5
    invariance_samples: int = 64
    exact_samples: int | None = 2000

    def __post_init__(self) -> None:
        for name in ("samples", "exact_samples"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise ConfigError(f"{name}={value!r}: use at least 2, or None for all")
        if self.invariance_samples < 1:
            raise ConfigError(f"invariance_samples={self.invariance_samples!r}: use 1 or more")
        for name in self.variants or ():
            if name not in GATED_VARIANTS:
                raise ConfigError(f"variant {name!r}: use one of {', '.join(GATED_VARIANTS)}")
        self.threshold_overrides = tuple(self.threshold_overrides)
        parse_threshold_overrides(self.threshold_overrides)  # a typo fails now, not after minutes of inference

    def resolve_thresholds(self, optimize_level: str | None = None) -> dict[str, Thresholds]:
        """The thresholds of every variant: explicit table or defaults for the level, then the overrides."""
        base = {**default_thresholds(self.optimize_level or optimize_level), **(self.thresholds or {})}
        return parse_threshold_overrides(self.threshold_overrides, base)


@dataclass
class VariantParity:
    """How one ONNX variant compares with PyTorch on the same reviews.

    Attributes:
        accuracy_change: variant accuracy minus PyTorch accuracy (fraction; -0.004 is 0.4 points lower).
        agreement: share of reviews with the same predicted label.
        max_prob_diff, mean_prob_diff: absolute probability differences over all reviews and classes.
        flips: the first `flips_listed` reviews whose label changed: id, true label, both probabilities.
        failures: the thresholds it broke, each with the numbers; empty when it passed.
        invariance: the batch-invariance check (Invariance.to_dict()), or None when it did not run.
        runtime: what ran it (onnxruntime, or OpenVINO with the precision its CPU plugin compiled).
        metrics: accuracy, F1, precision, recall and confusion matrix on the same reviews
            (metrics.classification_metrics) for a two-label model; None otherwise.
    """

    variant: str
    file: str
    reviews: int
    accuracy: float
    accuracy_change: float
    agreement: float
    max_prob_diff: float
    mean_prob_diff: float
    flip_count: int
    flips: list[dict]
    thresholds: dict
    failures: list[str]
    seconds: float
    invariance: dict | None = None
    metrics: dict | None = None
    runtime: dict | None = None

    @property
    def passed(self) -> bool:
        return not self.failures


# The issue's bound: the same review, whatever its batch, gets probabilities within 1e-5 and the same label.
# fp32 kernels differ across batch shapes by float rounding only (6e-8 measured on real reviews).
INVARIANCE_MAX_PROB_DIFF = 1e-5


@dataclass
class Invariance:
    """The same reviews scored one per call and in the gate's batches, by one variant.

    Attributes:
        claimed: the variant claims batch invariance (artifacts.VARIANT_BATCHING); only then is it gated.
        per_review: the variant runs one review per onnxruntime call.
        reviews: how many reviews were scored both ways.
        label_flips: reviews whose label differs between the two batchings.
        max_prob_diff, mean_prob_diff: absolute probability differences between the two batchings.
        max_allowed: the bound a claimed variant is held to.
        failure: what broke, with the numbers; None when it held (or is not claimed).
    """

    claimed: bool
    per_review: bool
    reviews: int
    label_flips: int
    max_prob_diff: float
    mean_prob_diff: float
    max_allowed: float = INVARIANCE_MAX_PROB_DIFF
    batchings: str = "one review per call vs the gate's run of the whole sample"
    failure: str | None = None

    @property
    def holds(self) -> bool:
        return self.label_flips == 0 and self.max_prob_diff <= self.max_allowed

    def to_dict(self) -> dict:
        return {**asdict(self), "holds": self.holds}


def _subset(total: int, size: int | None, seed: int) -> np.ndarray | None:
    """Sorted seeded row numbers of `size` of `total` rows; None when that is all of them."""
    if size is None or size >= total:
        return None
    return np.sort(np.random.default_rng(seed).choice(total, size=size, replace=False))


def check_invariance(
    predictor, encoded: list[list[int]], batched_probs: np.ndarray, samples: int, seed: int = 42
) -> Invariance:
    """Score a seeded subset one review per call and compare with the same reviews' batched probabilities.

    Args:
        predictor: the variant's predict.Predictor (its `batching` says what it claims).
        encoded: token ids of every review the gate scored.
        batched_probs: the gate's probabilities for them (`predictor.logits_from_ids(encoded)`, softmaxed).
        samples: how many reviews to score again (at most all of them).
        seed: seed of the subset.

    Returns:
        The comparison; `failure` is set when the variant claims invariance and it does not hold.
    """
    from imdb_deploy.evaluation import softmax

    subset = _subset(len(encoded), samples, seed)
    if subset is None:
        subset = np.arange(len(encoded))
    alone = softmax(np.concatenate([predictor.logits_from_ids([encoded[i]]) for i in subset]))
    batched = batched_probs[subset]
    diff = np.abs(alone - batched)
    result = Invariance(
        claimed=predictor.batching.batch_invariant,
        per_review=predictor.batching.per_review,
        reviews=len(subset),
        label_flips=int((alone.argmax(axis=1) != batched.argmax(axis=1)).sum()),
        max_prob_diff=float(diff.max()),
        mean_prob_diff=float(diff.mean()),
    )
    if result.claimed and not result.holds:
        result.failure = (
            f"claims batch invariance, but one review per call vs batched gave {result.label_flips} label flips "
            f"and max |probability difference| {result.max_prob_diff:.3g} (allowed 0 and "
            f"{result.max_allowed:.0e}) on {result.reviews} reviews"
        )
    return result


@dataclass
class ParityReport:
    """The gate's verdict: PyTorch's numbers and one VariantParity per checked ONNX variant."""

    onnx_dir: str
    model: str
    data: str
    split: str
    samples: int
    pytorch_accuracy: float
    pytorch_seconds: float
    variants: dict[str, VariantParity] = field(default_factory=dict)
    pytorch_metrics: dict | None = None
    problems: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.problems and all(v.passed for v in self.variants.values())

    def failures(self) -> list[str]:
        """Every broken threshold, as `variant: what (numbers)`."""
        return list(self.problems) + [f"{name}: {text}" for name, v in self.variants.items() for text in v.failures]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["passed"] = self.passed
        for name, variant in self.variants.items():
            out["variants"][name]["passed"] = variant.passed
        return out

    def summary(self) -> str:
        """A table for people: one line per variant, then the flipped reviews."""
        lines = [
            f"parity on {self.samples} reviews of {self.data} [{self.split}]: "
            f"PyTorch accuracy {self.pytorch_accuracy:.4f} ({self.pytorch_seconds:.1f}s)",
            f"  {'variant':<13} {'reviews':>7} {'accuracy':>8} {'change':>8} {'agree':>8} {'max|dp|':>9} "
            f"{'mean|dp|':>9} {'flips':>5} {'sec':>6}  {'batch invariance (max|dp|, flips)':<38} gate",
        ]
        for name, v in self.variants.items():
            lines.append(
                f"  {name:<13} {v.reviews:>7d} {v.accuracy:>8.4f} {100 * v.accuracy_change:>+7.2f}p "
                f"{100 * v.agreement:>7.2f}% {v.max_prob_diff:>9.2e} {v.mean_prob_diff:>9.2e} {v.flip_count:>5d} "
                f"{v.seconds:>6.1f}  {_describe_invariance(v.invariance):<38} {'pass' if v.passed else 'FAIL'}"
            )
        for name, why in self.skipped.items():
            lines.append(f"  {name:<13} skipped: {why}")
        for name, v in self.variants.items():
            for flip in v.flips:
                lines.append(
                    f"  {name} flip: {flip['id']} (label {flip['label']}): "
                    f"PyTorch {flip['pytorch']} -> {name} {flip['onnx']}"
                )
        lines += [f"  problem: {text}" for text in self.problems]
        lines.append("  gate: " + ("PASSED" if self.passed else "FAILED"))
        return "\n".join(lines)

    def raise_for_failure(self) -> None:
        """Raise ParityError naming every broken threshold with its numbers, if any."""
        if self.passed:
            return
        raise ParityError(
            f"parity gate FAILED on {self.samples} reviews of {self.data} [{self.split}] "
            f"(PyTorch accuracy {self.pytorch_accuracy:.4f}): "
            + "; ".join(self.failures())
            + ". The ONNX model does not answer like its PyTorch original; do not serve it. "
            "Thresholds can be changed with --threshold VARIANT.FIELD=VALUE"
        )


def _describe_invariance(invariance: dict | None) -> str:
    if invariance is None:
        return "-"
    verdict = ("holds" if invariance["holds"] else "BROKEN") if invariance["claimed"] else "batch-dependent"
    return f"{verdict} ({invariance['max_prob_diff']:.1e}, {invariance['label_flips']})"


def _two_label_metrics(labels: np.ndarray, probs: np.ndarray) -> dict | None:
    """classification_metrics (F1 and the rest are of label 1) for a two-label model; None otherwise."""
    from imdb_deploy.metrics import classification_metrics

    if probs.shape[1] != 2:
        return None
    return classification_metrics(labels, probs.argmax(axis=1))


def compare(
    variant: str,
    file: str,
    torch_probs: np.ndarray,
    onnx_probs: np.ndarray,
    labels: np.ndarray,
    ids: list[str],
    thresholds: Thresholds,
    flips_listed: int = 5,
    seconds: float = 0.0,
) -> VariantParity:
    """Compare one variant's probabilities with PyTorch's on the same labelled reviews."""
    torch_pred = torch_probs.argmax(axis=1)
    onnx_pred = onnx_probs.argmax(axis=1)
    diff = np.abs(torch_probs - onnx_probs)
    torch_accuracy = float((torch_pred == labels).mean())
    accuracy = float((onnx_pred == labels).mean())
    agreement = float((torch_pred == onnx_pred).mean())
    change = accuracy - torch_accuracy
    flipped = np.flatnonzero(torch_pred != onnx_pred)
    flipped = flipped[np.argsort(-diff[flipped].max(axis=1), kind="stable")]
    flips = [
        {
            "id": ids[i],
            "label": int(labels[i]),
            "pytorch": [round(float(p), 4) for p in torch_probs[i]],
            "onnx": [round(float(p), 4) for p in onnx_probs[i]],
        }
        for i in flipped[:flips_listed]
    ]
    max_diff, mean_diff = float(diff.max()), float(diff.mean())
    failures = []
    if agreement < thresholds.min_agreement:
        failures.append(
            f"label agreement {100 * agreement:.2f}% < {100 * thresholds.min_agreement:.2f}% "
            f"({len(flipped)} of {len(labels)} labels flipped)"
        )
    allowed = thresholds.allowed_drop(len(flipped), len(labels))
    if -change > allowed + 1e-12:
        noise = (
            f", the larger of {100 * thresholds.max_accuracy_drop:.2f} and {thresholds.drop_noise_sigmas:g} "
            f"standard errors of {len(flipped)} flips"
            if thresholds.drop_noise_sigmas
            else ""
        )
        failures.append(
            f"accuracy {accuracy:.4f} is {100 * -change:.2f} points below PyTorch's {torch_accuracy:.4f} "
            f"(allowed {100 * allowed:.2f}{noise})"
        )
    if thresholds.max_prob_diff is not None and max_diff > thresholds.max_prob_diff:
        failures.append(f"max |probability difference| {max_diff:.3g} > {thresholds.max_prob_diff:.3g}")
    if thresholds.max_mean_prob_diff is not None and mean_diff > thresholds.max_mean_prob_diff:
        failures.append(f"mean |probability difference| {mean_diff:.3g} > {thresholds.max_mean_prob_diff:.3g}")
    return VariantParity(
        metrics=_two_label_metrics(labels, onnx_probs),
        variant=variant,
        file=file,
        reviews=int(len(labels)),
        accuracy=accuracy,
        accuracy_change=change,
        agreement=agreement,
        max_prob_diff=max_diff,
        mean_prob_diff=mean_diff,
        flip_count=int(len(flipped)),
        flips=flips,
        thresholds=asdict(thresholds),
        failures=failures,
        seconds=round(seconds, 2),
    )


def present_variants(onnx_dir: str | os.PathLike | ExportFolder) -> dict[str, Path]:
    """Every variant the folder holds: the ONNX ones, then the OpenVINO IRs."""
    folder = open_folder(onnx_dir)
    return {**folder.variants, **folder.openvino_variants}


def source_model(onnx_dir: str | os.PathLike | ExportFolder) -> str:
    """The PyTorch model an export came from, as recorded in its export_report.json.

    Raises:
        ModelLoadError: the folder has no report or the report names no source.
    """
    source = open_folder(onnx_dir).report.get("source_model")
    if not source:
        raise ModelLoadError(
            f"{onnx_dir}: no {EXPORT_REPORT} naming the PyTorch model it was exported from; "
            "pass the original with --model MODEL_DIR"
        )
    return str(source)


def record_parity(onnx_dir: str | os.PathLike, report: ParityReport) -> Path:
    """Store a gate's results in the folder's export_report.json.

    `verified` becomes True only when the gate passed and checked every variant in the folder.

    Lets an export made with --no-verify (or re-checked on other data) carry its verdict; the file is
    rewritten atomically.

    Raises:
        ModelLoadError: the folder has no export_report.json.
    """
    from imdb_deploy.fileio import write_json_atomic

    path = Path(str(onnx_dir)) / EXPORT_REPORT
    if not path.is_file():
        raise ModelLoadError(f"{onnx_dir}: no {EXPORT_REPORT} to record the result in; re-export the folder")
    payload = read_json(path)
    if not isinstance(payload, dict):
        raise ModelLoadError(f"{path}: expected a JSON object, got {type(payload).__name__}; re-export the folder")
    present = present_variants(onnx_dir)
    payload["parity"] = report.to_dict()
    payload["verified"] = report.passed and set(report.variants) == set(present)
    # The files the gate judged: the graphs of the variants it ran (and their weights beside them), and every
    # other file but the graphs of variants it did not run, whose recorded checksums stay as they were.
    judged = {present[name].name for name in report.variants if name in present}
    judged |= {p.name for name in judged for p in graph_companions(Path(str(onnx_dir)) / name)}
    names = [name for name in checksummed_names(onnx_dir) if name in judged or not name.endswith(GRAPH_SUFFIXES)]
    recorded = payload.get("checksums") if isinstance(payload.get("checksums"), dict) else {}
    payload["checksums"] = {**recorded, **file_checksums(onnx_dir, names)}
    return write_json_atomic(path, payload)


def check_parity(
    onnx_dir: str | os.PathLike,
    model: str | os.PathLike | None = None,
    config: VerifyConfig | None = None,
    log: Callable[[str], None] | None = None,
) -> ParityReport:
    """Run PyTorch and each ONNX variant on the same labelled reviews and compare them.

    Args:
        onnx_dir: a folder written by `export` (ONNX files, tokenizer, train_config.json).
        model: the PyTorch original; None reads `source_model` from the folder's export_report.json.
        config: data, sample, variants and thresholds; defaults to VerifyConfig().
        log: receives progress lines for people.

    Returns:
        The report; call `raise_for_failure()` (or read `passed`) to act on it.

    Raises:
        ModelLoadError, HubUnreachableError: a model cannot be loaded.
        DataError: the data cannot be read.
    """
    from imdb_deploy.artifacts import load_settings, load_tokenizer, load_torch_classifier
    from imdb_deploy.data import load_split, stratified_sample
    from imdb_deploy.evaluation import softmax, torch_logits
    from imdb_deploy.predict import Predictor

    config = config or VerifyConfig()
    log = log or (lambda message: None)
    folder = ExportFolder(onnx_dir)  # refuses custom code before any work; read once for every variant
    present = present_variants(folder)
    if not present:
        raise ModelLoadError(f"{onnx_dir}: no ONNX model in it; create it with `imdb-deploy export`")
    wanted = config.variants or tuple(present)
    missing = [name for name in wanted if name not in present]
    if missing:
        raise ModelLoadError(f"{onnx_dir}: has no {', '.join(missing)} variant; present: {', '.join(present)}")
    model_ref = str(model) if model is not None else source_model(folder)
    thresholds = config.resolve_thresholds((folder.report.get("settings") or {}).get("optimize"))

    tokenizer = load_tokenizer(model_ref)
    settings = load_settings(model_ref, tokenizer)
    torch_model = load_torch_classifier(model_ref, label_names=settings.label_names)
    data = stratified_sample(load_split(config.data, config.split), config.samples, config.seed)
    labels = np.asarray(data.labels, dtype=np.int64)

    log(f"parity: PyTorch on {len(data)} reviews ...")
    started = time.perf_counter()
    torch_probs = softmax(torch_logits(torch_model, tokenizer, data.texts, settings, config.batch_size))
    report = ParityReport(
        onnx_dir=str(onnx_dir),
        model=model_ref,
        data=data.source,
        split=config.split,
        samples=len(data),
        pytorch_accuracy=float((torch_probs.argmax(axis=1) == labels).mean()),
        pytorch_seconds=round(time.perf_counter() - started, 2),
        pytorch_metrics=_two_label_metrics(labels, torch_probs),
    )
    del torch_model

    encoded: list[list[int]] | None = None  # the folder's token ids, shared by its variants
    exact_subset = _subset(len(data), config.exact_samples, config.seed)
    for name in wanted:
        if (name.startswith("int8") or name in OPENVINO_VARIANTS) and config.provider == "cuda":
            report.skipped[name] = "runs on CPU only (dynamic INT8, OpenVINO's CPU plugin)"
            continue
        if name in OPENVINO_VARIANTS and unavailable_reason():  # the folder stays unverified (record_parity)
            report.skipped[name] = unavailable_reason()
            continue
        rows = exact_subset if name in FP32_GRAPHS else None
        reviews = len(data) if rows is None else len(rows)
        log(f"parity: {name} ({present[name].name}) on {reviews} reviews ...")
        started = time.perf_counter()
        # The gate judges the files as they are: a changed file is what it is there to re-judge.
        predictor = Predictor(folder, variant=name, provider=config.provider, allow_unverified=True)
        if predictor.settings != settings:
            report.problems.append(
                f"{name}: the ONNX folder tokenizes with {predictor.settings.to_dict()} but the PyTorch model "
                f"with {settings.to_dict()}; re-export so train_config.json matches"
            )
        if encoded is None:
            encoded = predictor.encode(data.texts)
        ids = encoded if rows is None else [encoded[i] for i in rows]
        onnx_probs = softmax(predictor.logits_from_ids(ids))
        invariance = check_invariance(predictor, ids, onnx_probs, config.invariance_samples, config.seed)
        limits = thresholds.get(name, DEFAULT_EXACT)
        if name == "openvino-fp32" and predictor.runtime.get("inference_precision") in LOSSY_PRECISIONS:
            limits = thresholds[OPENVINO_LOSSY]
        report.variants[name] = compare(
            name,
            present[name].name,
            torch_probs if rows is None else torch_probs[rows],
            onnx_probs,
            labels if rows is None else labels[rows],
            data.ids if rows is None else [data.ids[i] for i in rows],
            limits,
            config.flips_listed,
            time.perf_counter() - started,
        )
        report.variants[name].invariance = invariance.to_dict()
        report.variants[name].runtime = dict(predictor.runtime)
        if invariance.failure:
            report.variants[name].failures.append(f"batch invariance: {invariance.failure}")
    return report
