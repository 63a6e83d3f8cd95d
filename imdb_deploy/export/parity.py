"""The parity gate's comparisons and report: one variant against PyTorch, batch invariance, the verdict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from imdb_deploy.errors import ParityError
from imdb_deploy.export.config import INVARIANCE_MAX_PROB_DIFF, Thresholds
from imdb_deploy.metrics import classification_metrics, softmax


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
