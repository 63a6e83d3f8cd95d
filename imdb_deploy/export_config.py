"""Settings of `imdb-deploy export`, in a module light enough for the CLI to import at start-up (the stage,
imdb_deploy.export, brings torch, transformers and onnxruntime)."""

from __future__ import annotations

from dataclasses import dataclass

from imdb_deploy.errors import ConfigError

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
        from imdb_deploy.verify import parse_threshold_overrides

        self.threshold_overrides = tuple(self.threshold_overrides)
        parse_threshold_overrides(self.threshold_overrides)  # a typo fails before the export, not after it
