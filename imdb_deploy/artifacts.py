"""The one place that opens model artifacts: Hub ids, trained model folders and exported ONNX folders.

Every later stage (evaluate, export, verify, predict, bench) loads through these functions, so a model
folder is always read the same way: weights, tokenizer, and the tokenization settings it was trained with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from imdb_deploy import __version__
from imdb_deploy.errors import ConfigError, HubUnreachableError, ModelLoadError
from imdb_deploy.fileio import write_json_atomic
from imdb_deploy.tokenization import LABEL_NAMES, TokenizationSettings

TRAIN_CONFIG = "train_config.json"
# What train_config.json records beside the tokenization settings (TokenizationSettings.to_dict()): every
# folder has every key, None where it does not apply (e.g. `training` for a folder bench built).
TRAIN_CONFIG_FIELDS = (
    "base_model",  # the encoder it was fine-tuned from (Hub id or folder), or the architecture spec
    "tokenizer",  # where the tokenizer came from when it is not the base model's
    "data_source",  # the training data (see imdb_deploy.data)
    "data_samples",  # reviews per split: {"train": n, "validation": n, "test": n}
    "training",  # the full TrainConfig
    "random_weights",  # True for an untrained architecture (bench): accuracy means nothing
    "imdb_deploy_version",  # the version that wrote the model
)
# Files in which a model folder can ask transformers to import Python code shipped in the folder.
CUSTOM_CODE_FILES = ("config.json", "tokenizer_config.json")
# Files that hold a tokenizer's vocabulary; a folder needs one of them (tokenizer.json for a fast tokenizer).
VOCABULARY_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "tokenizer.model")
METRICS = "metrics.json"
EXPORT_REPORT = "export_report.json"

# File name of each ONNX variant inside an exported folder, in the order a CPU prefers them last to first.
# "int8" and "int8-batched" are the same dynamic-INT8 file run two ways (see VARIANT_BATCHING).
ONNX_VARIANTS = {
    "fp32": "model.onnx",
    "optimized": "model_optimized.onnx",
    "int8": "model_quantized.onnx",
    "int8-batched": "model_quantized.onnx",
    "fp16": "model_fp16.onnx",
}


@dataclass(frozen=True)
class VariantBatching:
    """How a variant is fed to onnxruntime, and whether a review's answer can depend on its batch.

    Attributes:
        per_review: one review per onnxruntime call (no padding, nothing shared with other reviews).
        batch_invariant: the claim `verify` holds the variant to: the same review gets the same
            probabilities (max |difference| <= verify.INVARIANCE_MAX_PROB_DIFF, no label flip) in any batch.
        note: why, in a sentence people read in --help, /info and export_report.json.
    """

    per_review: bool
    batch_invariant: bool
    note: str

    def to_dict(self) -> dict:
        return asdict(self)


# Dynamic INT8 quantizes activations with one scale per onnxruntime call, over every token of the batch
# (padding included), so batched it is batch-dependent; one review per call it depends on that review alone.
# Measured (research/batch_invariance.py, 2,000 IMDb test reviews, fine-tuned MiniLM): see the README.
VARIANT_BATCHING = {
    "fp32": VariantBatching(False, True, "fp32 kernels treat rows independently (batchings differ by float rounding)"),
    "optimized": VariantBatching(
        False, True, "fused fp32 kernels treat rows independently (batchings differ by float rounding)"
    ),
    "int8": VariantBatching(
        True, True, "dynamic INT8 run one review per call: its activation scales come from that review alone"
    ),
    "int8-batched": VariantBatching(
        False,
        False,
        "BATCH-DEPENDENT: dynamic INT8 over length-sorted batches; activation scales span the whole batch, "
        "so a review's probabilities (and near 0.5 its label) depend on the reviews batched with it",
    ),
    "fp16": VariantBatching(False, False, "fp16 on the GPU: invariance not measured (no GPU has run it)"),
}

_LOCAL_HINT = (
    "Pass a local copy instead, e.g. --model models/distilbert-base-uncased "
    "(a folder with config.json, weights and tokenizer files)."
)


def is_local_reference(ref: str | os.PathLike) -> bool:
    """True when `ref` names a path (exists, or is written like one) rather than a Hub repository id."""
    text = str(ref)
    return Path(text).exists() or text.startswith((".", "/", "~")) or text.count("/") > 1 or os.sep + os.sep in text


@contextmanager
def hub_errors(ref: str | os.PathLike, what: str, hint: str = _LOCAL_HINT):
    """Turn loading failures into errors that say whether a folder is wrong or the Hub is out of reach."""
    try:
        yield
    except (OSError, ValueError, ConnectionError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if is_local_reference(ref):
            path = Path(str(ref)).expanduser()
            if not path.exists():
                raise ModelLoadError(f"{what} {str(ref)!r}: no such file or folder") from exc
            raise ModelLoadError(f"{what} {str(ref)!r} could not be loaded: {first_line}") from exc
        raise HubUnreachableError(
            f"{what} {str(ref)!r} is not a local path, and loading it from the Hugging Face Hub failed "
            f"({first_line}). The Hub may be out of reach from this machine. {hint}"
        ) from exc


def read_json(path: Path) -> dict:
    """Read a JSON artifact, naming the file when it is broken."""
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ModelLoadError(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}), so not a JSON file; re-create it with the "
            "stage that wrote it"
        ) from exc
    except (json.JSONDecodeError, RecursionError) as exc:
        detail = exc if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise ModelLoadError(f"{path}: not valid JSON ({detail}); re-create it with the stage that wrote it") from exc


def load_train_config(model_dir: str | os.PathLike) -> dict:
    """The `train_config.json` of a model folder, or {} for a model that imdb-deploy did not train."""
    path = Path(str(model_dir)) / TRAIN_CONFIG
    if not path.is_file():
        return {}
    config = read_json(path)
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path}: expected a JSON object, got {type(config).__name__}; re-create the folder")
    return config


def refuse_custom_code(model_ref: str | os.PathLike) -> None:
    """Refuse a model folder that asks to run code: its own Python (`auto_map`), or an attention kernel from the
    Hub (`attn_implementation` / `_attn_implementation_internal` naming anything but a built-in attention).

    imdb-deploy never runs code from a model folder: every transformers load passes trust_remote_code=False
    and an explicit attn_implementation. The second request is CVE-2026-4372 (GHSA-29pf-2h5f-8g72): on
    transformers < 5.3, a config.json whose attention names a Hub kernel makes from_pretrained() fetch and run
    that code, trust_remote_code=False or not. This check reads the files as plain JSON, before any load and
    any network access, so it holds on every transformers version (README "Security"). A Hub id's config.json
    is fetched alone first and checked the same way.

    Raises:
        ModelLoadError: naming the file, the key and the fix.
    """
    for path in _code_bearing_files(model_ref):
        data = read_json(path)
        if not isinstance(data, dict):
            continue
        if data.get("auto_map"):
            raise ModelLoadError(
                f"{path}: asks to run Python code shipped in the model folder (auto_map: "
                f"{_excerpt(', '.join(map(str, data['auto_map'])))}); imdb-deploy never runs code from a model "
                "folder. Use a model with a built-in architecture (e.g. DistilBERT), or remove auto_map if the "
                "folder does not need its own code"
            )
        for name in _unsafe_template_names(data.get("chat_template")):
            raise ModelLoadError(
                f"{path}: chat_template names a template {_excerpt(repr(name))}, which transformers < 5.10 would "
                "turn into a file path outside the folder when the tokenizer is saved (CVE-2026-9856); remove "
                "that template, or name it without '/', '\\' or '..'"
            )
        for key, value in _attention_requests(data):
            if not isinstance(value, str | None) or value not in BUILTIN_ATTENTION:
                raise ModelLoadError(
                    f"{path}: {key} is {_excerpt(repr(value))}, which asks transformers to load an attention "
                    "kernel (code) from outside the folder; imdb-deploy runs only built-in attention "
                    f"({', '.join(sorted(v for v in BUILTIN_ATTENTION if v))}). Remove {key} from the file, "
                    'or set it to "sdpa"'
                )


# attn_implementation values that name attention code shipped inside transformers and torch; anything else
# (a Hub kernel id such as "kernels-community/flash-attn", a "repo:function" reference) is refused.
BUILTIN_ATTENTION = frozenset({None, "eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention"})
ATTENTION_KEYS = ("attn_implementation", "_attn_implementation", "_attn_implementation_internal")


def _attention_requests(data, depth: int = 0) -> Iterator[tuple[str, object]]:
    """Every (key, value) of ATTENTION_KEYS in a config, nested sub-configs (text_config...) included."""
    if depth > 8:  # configs nest a level or two; deeper is not a config transformers reads
        return
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ATTENTION_KEYS:
                if isinstance(value, dict):  # per-sub-model mapping {"text_config": "sdpa", ...}
                    yield from ((f"{key}.{sub}", item) for sub, item in value.items())
                else:
                    yield key, value
            elif isinstance(value, dict | list):
                yield from _attention_requests(value, depth + 1)
    elif isinstance(data, list):
        for item in data:
            yield from _attention_requests(item, depth + 1)


def _unsafe_template_names(templates) -> Iterator[str]:
    """Names of named chat templates (a list of {"name", "template"} or a {name: template} mapping) that are not
    plain file names."""
    if isinstance(templates, dict):
        names = list(templates)
    elif isinstance(templates, list):
        names = [item.get("name") for item in templates if isinstance(item, dict)]
    else:
        return
    for name in names:
        if not isinstance(name, str) or "/" in name or "\\" in name or ".." in name or name.startswith("~"):
            yield name


def _code_bearing_files(model_ref: str | os.PathLike) -> list[Path]:
    """The CUSTOM_CODE_FILES of a local folder, or a Hub id's config.json fetched alone (none when offline:
    the load that follows then fails with its own clear error)."""
    if is_local_reference(model_ref):
        folder = Path(str(model_ref)).expanduser()
        return [folder / name for name in CUSTOM_CODE_FILES if (folder / name).is_file()]
    try:
        from huggingface_hub import hf_hub_download

        return [Path(hf_hub_download(str(model_ref), "config.json"))]
    except Exception:  # offline, unknown id, no config.json: nothing to check, and from_pretrained will say why
        return []


def _excerpt(text: str, limit: int = 80) -> str:
    """A value quoted in a message, cut short: a hostile file must not fill the terminal."""
    return text if len(text) <= limit else text[:limit] + "..."


def _label_names_from_model_config(model_dir: Path) -> list[str] | None:
    """The label names config.json gives by id, or None when it names none (LABEL_0, LABEL_1, ...)."""
    path = model_dir / "config.json"
    if not path.is_file():
        return None
    data = read_json(path)
    id2label = data.get("id2label") if isinstance(data, dict) else None
    if not id2label:
        return None
    if not isinstance(id2label, dict):
        raise ModelLoadError(f"{path}: id2label is {id2label!r}, not an object; re-create the folder")
    try:
        names = [id2label[str(i)] for i in range(len(id2label))]
    except KeyError as exc:
        raise ModelLoadError(f"{path}: id2label keys {sorted(id2label)} are not 0..{len(id2label) - 1}") from exc
    if all(isinstance(name, str) and name == f"LABEL_{i}" for i, name in enumerate(names)):
        return None
    return names


def write_train_config(
    folder: str | os.PathLike,
    settings: TokenizationSettings,
    base_model: str | os.PathLike,
    **fields,
) -> Path:
    """Write a model folder's `train_config.json` atomically: the one writer of that file.

    Args:
        folder: the model (or exported ONNX) folder.
        settings: how its reviews are tokenized; every later stage reads them back (load_settings).
        base_model: what it was built from (TRAIN_CONFIG_FIELDS).
        fields: the other TRAIN_CONFIG_FIELDS that apply; the rest are written as None (random_weights
            False, imdb_deploy_version this one).

    Returns:
        The file written.

    Raises:
        TypeError: a field that is not in TRAIN_CONFIG_FIELDS.
    """
    unknown = sorted(set(fields) - set(TRAIN_CONFIG_FIELDS))
    if unknown:
        raise TypeError(f"write_train_config: {', '.join(unknown)} not in TRAIN_CONFIG_FIELDS")
    record = {
        **settings.to_dict(),
        **dict.fromkeys(TRAIN_CONFIG_FIELDS),
        "random_weights": False,
        "imdb_deploy_version": __version__,
        **fields,
        "base_model": str(base_model),
    }
    return write_json_atomic(Path(str(folder)) / TRAIN_CONFIG, record)


def load_export_report(onnx_dir: str | os.PathLike) -> dict:
    """The `export_report.json` of an ONNX folder, or {} for a folder that has none."""
    path = Path(str(onnx_dir)) / EXPORT_REPORT
    return read_json(path) if path.is_file() else {}


def load_settings(model_ref: str | os.PathLike, tokenizer=None) -> TokenizationSettings:
    """Tokenization settings for a model: from its train_config.json, else head truncation at its limit.

    Args:
        model_ref: model folder, exported ONNX folder, or Hub id.
        tokenizer: the model's tokenizer, used for the length limit of a model without train_config.json.
    """
    config = load_train_config(model_ref) if is_local_reference(model_ref) else {}
    if config:
        path = Path(str(model_ref)) / TRAIN_CONFIG
        try:
            settings = TokenizationSettings.from_dict(config)
        except ConfigError as exc:
            raise ModelLoadError(f"{path}: {exc}; fix the value or re-create the folder with its stage") from exc
        from_model = _label_names_from_model_config(Path(str(model_ref)))
        if from_model is not None and list(settings.label_names) != from_model:
            raise ModelLoadError(
                f"{path}: label_names {list(settings.label_names)} contradict config.json's id2label "
                f"{from_model} (label id i must have the same name in both); correct label_names, or "
                "re-create the folder with the stage that wrote it"
            )
        return settings
    limit = getattr(tokenizer, "model_max_length", 512) or 512
    return TokenizationSettings(max_length=min(int(limit), 512), truncation="head", label_names=LABEL_NAMES)


def load_tokenizer(model_ref: str | os.PathLike, code_checked: bool = False):
    """The fast tokenizer of a model folder or Hub id; never runs code from the folder.

    Args:
        model_ref: the folder or Hub id.
        code_checked: refuse_custom_code already ran on this folder (model_folder.ExportFolder runs it once).

    Raises:
        ModelLoadError: the folder asks for custom code, or has no usable tokenizer files.
        HubUnreachableError: a Hub id could not be fetched.
    """
    from transformers import AutoTokenizer

    if not code_checked:
        refuse_custom_code(model_ref)
    folder = Path(str(model_ref)).expanduser()
    if is_local_reference(model_ref) and folder.is_dir() and not any((folder / f).is_file() for f in VOCABULARY_FILES):
        # transformers 5 builds an empty tokenizer (special tokens only) from a folder without these files, and
        # every review would then score the same: refuse instead.
        raise ModelLoadError(_no_tokenizer(model_ref, FileNotFoundError(f"none of {', '.join(VOCABULARY_FILES)}")))
    with hub_errors(model_ref, "Tokenizer"):
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(model_ref), use_fast=True, trust_remote_code=False)
        except (OSError, ValueError, ConnectionError):
            raise
        except Exception as exc:  # transformers and tokenizers raise TypeError, KeyError... on broken files
            raise ModelLoadError(_no_tokenizer(model_ref, exc)) from exc
    if (
        not callable(tokenizer)
        or not hasattr(tokenizer, "backend_tokenizer")
        or len(tokenizer) <= len(tokenizer.all_special_tokens)
    ):
        raise ModelLoadError(_no_tokenizer(model_ref, TypeError(type(tokenizer).__name__)))
    return tokenizer


def _no_tokenizer(model_ref, exc: Exception) -> str:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (
        f"Tokenizer {str(model_ref)!r} could not be loaded ({detail}); the folder needs its tokenizer files "
        "(tokenizer.json, or vocab.txt with tokenizer_config.json): copy them from the base model"
    )


def load_torch_classifier(
    model_ref: str | os.PathLike, num_labels: int = 2, label_names=LABEL_NAMES, attn_implementation: str = "sdpa"
):
    """A PyTorch sequence classifier; a base encoder (e.g. distilbert-base-uncased) gets a fresh head.

    Args:
        attn_implementation: "sdpa" (training, evaluation) or "eager" (the ONNX export: the form onnxruntime
            fuses). Always passed explicitly, so a config.json cannot choose an attention kernel
            (refuse_custom_code refuses one that tries).

    Returns:
        The model in eval mode on the CPU.
    """
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    refuse_custom_code(model_ref)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialized head" warning is expected for a base encoder
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # transformers 5's "Loading weights" bar: a tiny folder loads at once
    try:
        with hub_errors(model_ref, "Model"):
            model = AutoModelForSequenceClassification.from_pretrained(
                str(model_ref),
                trust_remote_code=False,
                attn_implementation=attn_implementation,
                num_labels=num_labels,
                id2label=dict(enumerate(label_names)),
                label2id={name: i for i, name in enumerate(label_names)},
            )
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    return model.eval()


def onnx_variants(onnx_dir: str | os.PathLike) -> dict[str, Path]:
    """The ONNX variants present in an exported folder, by name."""
    folder = Path(str(onnx_dir))
    return {name: folder / file for name, file in ONNX_VARIANTS.items() if (folder / file).is_file()}


def resolve_onnx_variant(onnx_dir: str | os.PathLike, variant: str = "auto", gpu: bool = False) -> tuple[str, Path]:
    """Pick an ONNX file from an exported folder.

    Args:
        onnx_dir: folder written by `imdb-deploy export`.
        variant: "auto", or one of ONNX_VARIANTS. "auto" takes "int8" on CPU (dynamic INT8 one review per
            call: parity-checked and batch-invariant), fp16 then optimized then fp32 on GPU (ONNX Runtime's
            CUDA provider does not run dynamic INT8). It never picks "int8-batched" (batch-dependent).
        gpu: whether the session will run on CUDA.

    Raises:
        ModelLoadError: the folder or the requested variant is missing.
    """
    folder = Path(str(onnx_dir))
    if not folder.is_dir():
        raise ModelLoadError(f"ONNX folder {str(onnx_dir)!r}: no such folder; create it with `imdb-deploy export`")
    refuse_custom_code(folder)
    return pick_onnx_variant(folder, onnx_variants(folder), variant, gpu)


def pick_onnx_variant(folder: Path, present: dict[str, Path], variant: str, gpu: bool) -> tuple[str, Path]:
    """resolve_onnx_variant's choice among the variants `present` in `folder` (onnx_variants), read once."""
    if not present:
        raise ModelLoadError(
            f"{folder}: no ONNX model in it (expected one of {', '.join(dict.fromkeys(ONNX_VARIANTS.values()))}); "
            "create it with `imdb-deploy export MODEL_DIR --output DIR`"
        )
    if variant == "auto":
        order = ("fp16", "optimized", "fp32") if gpu else ("int8", "optimized", "fp32")
        for name in order:
            if name in present:
                return name, present[name]
        name = next(iter(present))
        return name, present[name]
    if variant not in ONNX_VARIANTS:
        raise ModelLoadError(f"variant {variant!r}: use auto or one of {', '.join(ONNX_VARIANTS)}")
    if variant not in present:
        raise ModelLoadError(
            f"{folder}: has no {variant} model ({ONNX_VARIANTS[variant]}); present: {', '.join(present)}"
        )
    return variant, present[variant]


def open_onnx_session(path: str | os.PathLike, provider: str = "cpu", threads: int | None = None):
    """An onnxruntime InferenceSession for one ONNX file.

    Args:
        path: the .onnx file.
        provider: "cpu" or "cuda".
        threads: intra-op threads; None lets onnxruntime use all physical cores.

    Raises:
        ModelLoadError: onnxruntime is missing, or CUDA was asked for and is not available.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelLoadError(
            "onnxruntime is not installed: pip install 'imdb-deploy[cpu]' (or '[gpu]' for onnxruntime-gpu)"
        ) from exc
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    if provider == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ModelLoadError(
                "CUDA was requested but onnxruntime has no CUDAExecutionProvider here "
                f"(available: {', '.join(ort.get_available_providers())}); install the gpu extra "
                "(pip install 'imdb-deploy[gpu]', which brings onnxruntime-gpu) or use --provider cpu"
            )
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    elif provider == "cpu":
        providers = ["CPUExecutionProvider"]
    else:
        raise ModelLoadError(f"provider {provider!r}: use cpu or cuda")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for broken files
        raise ModelLoadError(f"{path}: onnxruntime could not load it ({exc})") from exc
