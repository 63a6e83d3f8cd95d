"""Settings of export and of the parity gate (thresholds included), light enough for the CLI to import."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace

import numpy as np

from imdb_deploy.errors import ConfigError
from imdb_deploy.runtimes.config import ONNX_VARIANTS, OPENVINO_VARIANTS

# What writes the fp32 graph (imdb_deploy.exporters): auto takes optimum where it imports, torch's otherwise.
EXPORTERS = ("auto", "torch", "optimum")

# "none" skips fusion; O1 basic graph rewrites; O2 adds the transformer fusions (attention, GELU, LayerNorm)
# and is the CPU default (numerically exact up to float rounding); O3 also approximates GELU (tanh form,
# changes outputs slightly); O4 is O3 in fp16, which only a GPU runs fast.
OPTIMIZATION_LEVELS = ("none", "O1", "O2", "O3", "O4")

GPU_ONLY_LEVELS = ("O4",)

QUANTIZATION_TARGETS = ("avx512_vnni", "avx512", "avx2", "arm64")

QUANTIZE_SOURCES = ("optimized", "fp32")

DEVICES = ("cpu", "cuda")

# When export writes the OpenVINO variants (openvino_runtime.write_variants): auto with --quantize where the
# openvino extra imports and the gate runs; on always (an error without the extra); off never.
OPENVINO_MODES = ("auto", "on", "off")


@dataclass
class ExportConfig:
    """Settings of `imdb-deploy export`.

    Attributes:
        exporter: what writes the fp32 graph, one of exporters.EXPORTERS: "auto" takes optimum where it imports
            with the installed transformers, torch's exporter otherwise (imdb_deploy.exporters).
        opset: ONNX opset; None takes the exporter's default (exporters.DEFAULT_OPSET for torch's; recorded).
        optimize: fusion level, one of OPTIMIZATION_LEVELS. "O2" is the CPU default: its fusions
            (attention, GELU, LayerNorm) speed a CPU up without changing the math; "O4" (fp16) needs
            device "cuda".
        quantize: also write the dynamic INT8 model (CPU only).
        quantize_target: CPU whose INT8 settings to use ("auto" detects this machine's), one of
            QUANTIZATION_TARGETS.
        per_channel: one INT8 scale per weight column instead of per tensor. On the real-data check per-tensor
            scales fail the gate's agreement bound and per-channel passes, at about the same speed
            (research/README.md, bench_int8_research.py).
        reduce_range: 7-bit weights, the cure for VPMADDUBSW saturation on AVX512 CPUs without VNNI.
        quantize_from: quantize the fused graph ("optimized") or the plain one ("fp32"). The fused one is
            the default: on the real-data check it agreed with PyTorch more often, and it runs faster
            (research/README.md, bench_int8_research.py).
        device: "cpu" or "cuda"; the device the exported graphs are optimized for.
        cls_only_last_layer: export the last transformer layer for the [CLS] position only (exact: the
            classifier reads only that position; the gate checks fp32 agreement as always). False exports the
            model as it is. It runs faster at distilbert-base/512 INT8 (research/README.md,
            bench_int8_research.py --stage final).
        verify: run the parity gate; False writes the folder marked `"verified": false`.
        data: labelled reviews for the gate (see imdb_deploy.data).
        split: split of `data` the gate scores.
        verify_samples: stratified sample size for the gate; None for the whole split.
        verify_exact_samples: most of those reviews the fp32 graphs are checked on (verify.VerifyConfig.
            exact_samples); None: all of them.
        threshold_overrides: "VARIANT.FIELD=VALUE" changes to the gate's default thresholds
            (verify.default_thresholds), e.g. "int8.min_agreement=0.97".
        openvino: write the OpenVINO variants (openvino-int8: nncf static INT8; openvino-fp32: the fp32 graph at
            the precision the CPU picks), one of OPENVINO_MODES. "auto" writes them with --quantize where the
            openvino extra imports and the gate runs, since the gate and the timing decide whether they are used.
        calibration_data: the data source whose TRAINING split calibrates openvino-int8's static scales; None:
            `data`'s training split (never the split the gate scores). The reviews' ids are recorded.
        calibration_samples: training reviews to calibrate on (nncf's own default subset size is 300). nncf
            scores them twice (SmoothQuant, then the min/max statistics): at distilbert-base/512 on 2 shared
            cores 32 reviews took 41 s, so 300 take about 6 minutes; fewer calibrate faster, and the gate
            still judges the result.
        timing_samples: reviews of the gate's split each gated variant is timed on to choose the default
            (runtime_choice), two interleaved passes each. 16 keeps it to seconds for the INT8 variants and about
            half a minute in all at distilbert-base/512 on 2 cores (the fp32 graphs run about 3 reviews/s there),
            while a challenger needs a 10% lead (runtime_choice.MIN_GAIN) to win.
        overwrite: replace an existing output folder (only once the new one is complete and verified).
    """

    exporter: str = "auto"
    opset: int | None = None
    optimize: str = "O2"
    quantize: bool = False
    quantize_target: str = "auto"
    per_channel: bool = True
    reduce_range: bool = False
    quantize_from: str = "optimized"
    device: str = "cpu"
    cls_only_last_layer: bool = True
    verify: bool = True
    data: str = "imdb"
    split: str = "test"
    verify_samples: int | None = 1000
    verify_exact_samples: int | None = 2000
    threshold_overrides: tuple[str, ...] = ()
    openvino: str = "auto"
    calibration_data: str | None = None
    calibration_samples: int = 300
    timing_samples: int = 16
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.exporter not in EXPORTERS:
            raise ConfigError(f"exporter={self.exporter!r}: use one of {', '.join(EXPORTERS)}")
        if self.opset is not None and not 11 <= self.opset <= 23:
            raise ConfigError(f"opset={self.opset!r}: use an ONNX opset from 11 to 23 (or leave it unset)")
        if self.optimize not in OPTIMIZATION_LEVELS:
            raise ConfigError(f"optimize={self.optimize!r}: use one of {', '.join(OPTIMIZATION_LEVELS)}")
        if self.device not in DEVICES:
            raise ConfigError(f"device={self.device!r}: use one of {', '.join(DEVICES)}")
        if self.optimize in GPU_ONLY_LEVELS and self.device != "cuda":
            raise ConfigError(
                f"optimize={self.optimize!r} converts the graph to fp16, which only a GPU runs fast; "
                "use --device cuda, or O2 for a CPU"
            )
        if self.quantize and self.device == "cuda":
            raise ConfigError(
                "--quantize writes a dynamic INT8 model, which is CPU-only: ONNX Runtime's CUDA provider has no "
                "kernels for its DynamicQuantizeLinear/MatMulInteger ops. Drop --quantize for a GPU export "
                "(use --optimize O4 for fp16), or export for --device cpu"
            )
        if self.quantize_target != "auto" and self.quantize_target not in QUANTIZATION_TARGETS:
            raise ConfigError(
                f"quantize_target={self.quantize_target!r}: use auto or one of {', '.join(QUANTIZATION_TARGETS)}"
            )
        if self.quantize_from not in QUANTIZE_SOURCES:
            raise ConfigError(f"quantize_from={self.quantize_from!r}: use one of {', '.join(QUANTIZE_SOURCES)}")
        if self.openvino not in OPENVINO_MODES:
            raise ConfigError(f"openvino={self.openvino!r}: use one of {', '.join(OPENVINO_MODES)}")
        if self.openvino == "on" and self.device == "cuda":
            raise ConfigError("openvino='on' writes CPU-only variants; export for --device cpu")
        for name in ("calibration_samples", "timing_samples"):
            if getattr(self, name) < 2:
                raise ConfigError(f"{name}={getattr(self, name)!r}: use at least 2")
        for name in ("verify_samples", "verify_exact_samples"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise ConfigError(f"{name}={value!r}: use at least 2, or None for all")
        from imdb_deploy.export.config import parse_threshold_overrides

        self.threshold_overrides = tuple(self.threshold_overrides)
        parse_threshold_overrides(self.threshold_overrides)  # a typo fails before the export, not after it


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


# The bound: the same review, whatever its batch, gets probabilities within 1e-5 and the same label.
# fp32 kernels differ across batch shapes by float rounding only (6e-8 measured on real reviews).
INVARIANCE_MAX_PROB_DIFF = 1e-5
