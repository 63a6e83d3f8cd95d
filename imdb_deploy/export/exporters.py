"""The three steps that turn a PyTorch classifier into ONNX files, each with the tool made for it.

1. The fp32 graph (`model.onnx`, dynamic `batch_size` and `sequence_length` axes) comes from one of two
   exporters behind `export_fp32`:
   - "torch": `torch.onnx.export` (TorchScript tracing, `dynamo=False`) of the model loaded with eager
     attention. Eager attention traces to the MatMul/Softmax pattern onnxruntime's transformer optimizer fuses
     into its Attention op; the default SDPA trace fuses no Attention at all.
   - "optimum": optimum-onnx's `onnx_export_from_model` (task text-classification), the exporter the project
     card names. Its last release (0.1.0) requires transformers < 4.58 and fails to import under transformers 5
     (huggingface/optimum-onnx#114), so it runs only in an environment built for it (README "Exporters").
   "auto" takes optimum when it imports with the installed transformers, torch's exporter otherwise.
2. Fusion: `onnxruntime.transformers.optimizer.optimize_model` with the fusion options optimum's
   `AutoOptimizationConfig` sets for each level (O1-O4), the same call optimum's `ORTOptimizer` makes.
3. Dynamic INT8: `onnxruntime.quantization.quantize_dynamic` with optimum's `AutoQuantizationConfig` presets
   per CPU (QuantizationSettings), int8 weights on AVX2 (see `quantization_settings`).

Every step records what it did (`describe_*`), so export_report.json says which exporter, which versions and
which fused operators made the files.
"""

from __future__ import annotations

import logging
import os
import warnings
from argparse import Namespace
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import onnx
import torch
import transformers
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.fusion_options import FusionOptions
from onnxruntime.transformers.optimizer import optimize_model

from imdb_deploy.errors import ConfigError, ModelLoadError
from imdb_deploy.export.config import EXPORTERS

# The opset torch's exporter writes by default: the one optimum-onnx 0.1.0 writes for DistilBERT, so both
# exporters' graphs run on the same onnxruntime kernels.
DEFAULT_OPSET = 18

FP32_FILE = "model.onnx"

# The attention form whose trace onnxruntime's transformer optimizer fuses into its Attention op: transformers 5's
# eager attention (its SDPA trace fuses none); under 4.x the SDPA form, as optimum exported it (its eager form,
# masked_fill on the raw mask, fuses none). tests/test_export.py counts the fused Attention ops either way.
EXPORT_ATTENTION = "eager" if int(transformers.__version__.split(".")[0]) >= 5 else "sdpa"

INPUT_NAMES = ("input_ids", "attention_mask")

# onnxruntime's transformer optimizer handles DistilBERT with its BERT fusions (optimum maps it the same way).
ORT_MODEL_TYPE = "bert"

# Operators a fused graph is counted by in the report: the fusions O2 is for.
FUSED_OPERATORS = (
    "Attention",
    "QAttention",
    "MultiHeadAttention",
    "EmbedLayerNormalization",
    "SkipLayerNormalization",
    "LayerNormalization",
    "BiasGelu",
    "Gelu",
    "FastGelu",
    "MatMulInteger",
    "DynamicQuantizeLinear",
)

# Operators dynamic INT8 quantizes: optimum's ORT_DEFAULT_OPS_DYNAMIC_QUANTIZATION, the operator list of every
# AutoQuantizationConfig preset (MatMul and the fused Attention are the ones a DistilBERT graph has).
DYNAMIC_QUANTIZATION_OPERATORS = (
    "Conv",
    "MatMul",
    "Attention",
    "LSTM",
    "Gather",
    "Transpose",
    "EmbedLayerNormalization",
)


def optimum_status() -> tuple[bool, str]:
    """Whether optimum-onnx's exporter imports here, and why not when it does not.

    Returns:
        (available, detail): detail names the version that imports, or the import error's first line.
    """
    try:
        from optimum.exporters.onnx import onnx_export_from_model  # noqa: F401
    except Exception as exc:  # ImportError, or the AttributeError/ImportError of a transformers it does not know
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return False, f"{type(exc).__name__}: {text}"
    try:
        return True, f"optimum-onnx {version('optimum-onnx')}"
    except PackageNotFoundError:
        return True, "optimum-onnx (version unknown)"


def resolve_exporter(name: str = "auto") -> str:
    """The exporter to use: "optimum" or "torch".

    Raises:
        ConfigError: an unknown name, or "optimum" asked for where it cannot import.
    """
    if name not in EXPORTERS:
        raise ConfigError(f"exporter={name!r}: use one of {', '.join(EXPORTERS)}")
    if name == "torch":
        return name
    available, detail = optimum_status()
    if available:
        return "optimum"
    if name == "optimum":
        raise ConfigError(
            f"--exporter optimum: optimum-onnx does not import here ({detail}); its last release needs "
            f"transformers < 4.58 (installed: {transformers.__version__}). Use --exporter torch (the default "
            "here), or build the optimum environment: bash scripts/setup.sh --optimum"
        )
    return "torch"


def describe_exporter(name: str, opset: int) -> dict:
    """What export_report.json records about the exporter that wrote model.onnx."""
    record = {"name": name, "opset": opset, "torch": torch.__version__, "transformers": transformers.__version__}
    if name == "torch":
        record["call"] = f"torch.onnx.export(dynamo=False), {EXPORT_ATTENTION} attention"
    else:
        record["call"] = "optimum.exporters.onnx.onnx_export_from_model(task='text-classification')"
        record["optimum-onnx"] = optimum_status()[1].removeprefix("optimum-onnx ")
    return record


def export_fp32(model, folder: Path, exporter: str, opset: int | None, device: str = "cpu") -> int:
    """Write `folder/model.onnx` from a PyTorch sequence classifier with dynamic batch and sequence axes.

    Args:
        model: the classifier in eval mode (for "torch", loaded with eager attention; see module docstring).
        folder: where model.onnx goes (config and tokenizer files are the caller's).
        exporter: "torch" or "optimum" (resolve_exporter).
        opset: ONNX opset; None for DEFAULT_OPSET (torch) or optimum's default for the architecture.
        device: "cpu" or "cuda": where the model is traced.

    Returns:
        The opset written.
    """
    model = model.to(device).eval()
    if exporter == "optimum":
        from optimum.exporters.onnx import onnx_export_from_model  # optional: its own environment (module doc)

        # The parity gate checks on real reviews; optimum's own check only warns on failure.
        onnx_export_from_model(
            model, output=folder, task="text-classification", opset=opset, do_validation=False, device=device
        )
    else:
        # Two reviews of different lengths, so the trace sees a real padding mask, not an all-ones constant.
        input_ids = torch.ones((2, 16), dtype=torch.long, device=device)
        attention_mask = torch.ones((2, 16), dtype=torch.long, device=device)
        attention_mask[1, 10:] = 0
        axes = {0: "batch_size", 1: "sequence_length"}
        with torch.no_grad(), _quiet_tracer():
            torch.onnx.export(
                model,
                (input_ids, attention_mask),
                str(folder / FP32_FILE),
                input_names=list(INPUT_NAMES),
                output_names=["logits"],
                dynamic_axes={"input_ids": axes, "attention_mask": axes, "logits": {0: "batch_size"}},
                opset_version=opset or DEFAULT_OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
    if not (folder / FP32_FILE).is_file():
        raise ModelLoadError(f"the {exporter} exporter wrote no {FP32_FILE}; files: {sorted(os.listdir(folder))}")
    return written_opset(folder / FP32_FILE)


@contextmanager
def _quiet_tracer() -> Iterator[None]:
    """TorchScript's TracerWarnings about constants in transformers' mask code are expected: the gate checks
    the graph on real reviews of every length, so they would only be noise on the user's stderr."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        yield


def written_opset(path: Path) -> int | None:
    """The default-domain opset of an ONNX file."""
    model = onnx.load(str(path), load_external_data=False)
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), None)


def operator_counts(path: Path) -> dict[str, int]:
    """How many of each FUSED_OPERATORS an ONNX graph holds (the ones it has)."""
    counts = Counter(node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node)
    return {name: counts[name] for name in FUSED_OPERATORS if counts[name]}


# optimum's AutoOptimizationConfig levels: (onnxruntime optimization level, transformer fusions, approximate
# GELU, fp16). O1 basic graph rewrites; O2 adds the transformer fusions (attention, GELU, LayerNorm); O3 also
# approximates GELU (tanh form); O4 is O3 in fp16, which only a GPU runs fast.
FUSION_LEVELS = {
    "O1": (1, False, False, False),
    "O2": (2, True, False, False),
    "O3": (2, True, True, False),
    "O4": (2, True, True, True),
}


def _fusion_options(level: str):
    """onnxruntime FusionOptions as optimum's OptimizationConfig.create_fusion_options builds them."""
    _, _, approximate_gelu, _ = FUSION_LEVELS[level]
    args = Namespace(
        model_type=ORT_MODEL_TYPE,
        # optimum's defaults for every level: group norm, embed layer norm and packed KV fusions off.
        disable_gelu=False,
        disable_layer_norm=False,
        disable_attention=False,
        disable_rotary_embeddings=False,
        use_mask_index=False,
        use_raw_attention_mask=False,
        no_attention_mask=False,
        use_multi_head_attention=False,
        disable_skip_layer_norm=False,
        disable_embed_layer_norm=True,
        disable_bias_skip_layer_norm=False,
        disable_bias_gelu=False,
        enable_gelu_approximation=approximate_gelu,
        disable_shape_inference=False,
        enable_gemm_fast_gelu=False,
        use_group_norm_channels_first=False,
        disable_group_norm=True,
        disable_skip_group_norm=False,
        disable_packed_kv=True,
        disable_packed_qkv=False,
        disable_bias_add=False,
        disable_bias_splitgelu=False,
        disable_nhwc_conv=False,
    )
    return FusionOptions.parse(args)


def fuse(source: Path, target: Path, level: str, num_heads: int, hidden_size: int, gpu: bool = False) -> None:
    """Fuse an fp32 graph with onnxruntime's transformer optimizer at an optimum level ("O1".."O4").

    Raises:
        ConfigError: an unknown level.
    """
    if level not in FUSION_LEVELS:
        raise ConfigError(f"optimize={level!r}: use one of {', '.join(FUSION_LEVELS)}")
    opt_level, transformer_fusions, _, fp16 = FUSION_LEVELS[level]
    # The optimizer logs each fusion it makes on the root logger at INFO; the report counts them instead.
    with _log_level("onnxruntime.transformers", logging.WARNING):
        optimizer = optimize_model(
            str(source),
            ORT_MODEL_TYPE,
            num_heads,
            hidden_size,
            opt_level=opt_level,
            optimization_options=_fusion_options(level),
            use_gpu=gpu,
            only_onnxruntime=not transformer_fusions,
        )
        if fp16:
            optimizer.convert_float_to_float16(keep_io_types=True)
        optimizer.save_model_to_file(str(target))


@contextmanager
def _log_level(name: str, level: int) -> Iterator[None]:
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


@dataclass(frozen=True)
class QuantizationSettings:
    """Dynamic-INT8 settings for one CPU target: optimum's AutoQuantizationConfig preset, as data.

    Attributes:
        target: the CPU preset (QUANTIZATION_TARGETS in export.py).
        weights_dtype / activations_dtype: onnxruntime QuantType names (QInt8, QUInt8).
        per_channel: one weight scale per output column.
        reduce_range: 7-bit weights (VPMADDUBSW saturation on AVX512 CPUs without VNNI).
        weights_symmetric / activations_symmetric: zero points fixed at 0 (weights) or computed (activations).
        operators: the operator types quantized.
    """

    target: str
    weights_dtype: str = "QInt8"
    activations_dtype: str = "QUInt8"
    per_channel: bool = True
    reduce_range: bool = False
    weights_symmetric: bool = True
    activations_symmetric: bool = False
    operators: tuple[str, ...] = DYNAMIC_QUANTIZATION_OPERATORS

    def to_dict(self) -> dict:
        record = asdict(self)
        record["operators"] = list(self.operators)
        return record


def quantization_settings(target: str, per_channel: bool = True, reduce_range: bool = False) -> QuantizationSettings:
    """The dynamic-INT8 settings for a CPU target ("avx512_vnni", "avx512", "avx2", "arm64").

    optimum's presets are u8 activations and s8 weights everywhere but AVX2, where its preset has u8 weights.
    Those send onnxruntime to its U8U8 kernel (16-bit VPMADDWD); int8 weights take the U8S8 kernel (VPMADDUBSW),
    faster at the same parity on AVX2 (research/README.md, bench_int8_research.py), so AVX2 gets int8 weights
    too. reduce_range applies where optimum's preset takes it (avx512, avx2); arm64 and avx512_vnni ignore it.
    """
    return QuantizationSettings(
        target=target,
        per_channel=per_channel,
        reduce_range=reduce_range if target in ("avx512", "avx2") else False,
    )


def quantize(source: Path, target: Path, settings: QuantizationSettings) -> None:
    """Dynamic INT8 of `source` (fp32 or fused) into `target` with onnxruntime's quantize_dynamic."""
    # quantize_dynamic advises its pre-processing (shape inference + graph optimization) on the root logger;
    # a fused graph is optimized already, so the advice would only be noise on the user's stderr.
    with _dropped_log_message("consider to run pre-processing"):
        quantize_dynamic(
            source,
            target,
            op_types_to_quantize=list(settings.operators),
            per_channel=settings.per_channel,
            reduce_range=settings.reduce_range,
            weight_type=QuantType[settings.weights_dtype],
            extra_options={
                # Fused contrib ops (Attention, SkipLayerNormalization...) have outputs shape inference
                # cannot type; they are all float here.
                "DefaultTensorType": onnx.TensorProto.FLOAT,
                "WeightSymmetric": settings.weights_symmetric,
                "ActivationSymmetric": settings.activations_symmetric,
            },
        )


@contextmanager
def _dropped_log_message(text: str) -> Iterator[None]:
    """Drop root-logger records containing `text` while the block runs."""

    def keep(record: logging.LogRecord) -> bool:
        return text not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def cls_only_last_layer(model) -> None:
    """Make a DistilBERT classifier's last transformer layer compute only the [CLS] position, in place.

    Keys and values still cover every token; the query, the attention output, both LayerNorms and the
    feed-forward block run for position 0 alone. The classifier head reads only position 0, so the logits
    are unchanged (up to float rounding) while the layer does about a sixth of its work.

    Raises:
        ModelLoadError: the model is not a DistilBERT sequence classifier.
    """
    layers = getattr(getattr(getattr(model, "distilbert", None), "transformer", None), "layer", None)
    if not layers:
        raise ModelLoadError(
            f"{type(model).__name__}: the [CLS]-only last layer needs a DistilBERT sequence classifier; "
            "export with --full-last-layer"
        )
    last = layers[-1]
    attention = last.attention
    # transformers 5's blocks return the hidden states; 4.x's a tuple whose last item they are.
    returns_tuple = int(transformers.__version__.split(".")[0]) < 5

    def forward(hidden_states, attn_mask=None, *args, **kwargs):
        if attn_mask is None:
            attn_mask = kwargs.get("attention_mask")
        batch, _, dim = hidden_states.shape
        heads = attention.n_heads
        head_dim = dim // heads

        def split(t):
            return t.view(batch, -1, heads, head_dim).transpose(1, 2)

        query = hidden_states[:, :1]
        q = split(attention.q_lin(query))
        k = split(attention.k_lin(hidden_states))
        v = split(attention.v_lin(hidden_states))
        scores = torch.matmul(q, k.transpose(2, 3)) * head_dim**-0.5
        if attn_mask is not None:
            if attn_mask.dim() == 2:  # 4.x eager: (batch, tokens) of 1 keep / 0 padding
                scores = scores.masked_fill(attn_mask[:, None, None, :] == 0, torch.finfo(scores.dtype).min)
            elif attn_mask.dtype == torch.bool:  # SDPA-style: True where attention is allowed
                scores = scores.masked_fill(~attn_mask[:, :, :1, :], torch.finfo(scores.dtype).min)
            else:  # 5.x eager: an additive float mask with a row per query position
                scores = scores + attn_mask[:, :, :1, :]
        context = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(batch, 1, dim)
        attended = last.sa_layer_norm(attention.out_lin(context) + query)
        output = last.output_layer_norm(last.ffn(attended) + attended)
        return (output,) if returns_tuple else output

    last.forward = forward
