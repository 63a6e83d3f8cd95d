"""The one place that opens model artifacts: Hub ids, trained model folders and exported ONNX folders.

Every later stage (evaluate, export, verify, predict, bench) loads through these functions, so a model
folder is always read the same way: weights, tokenizer, and the tokenization settings it was trained with.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from safetensors import SafetensorError, safe_open

from imdb_deploy.errors import ConfigError, HubUnreachableError, ModelLoadError
from imdb_deploy.fileio import write_json_atomic
from imdb_deploy.tokenization import LABEL_NAMES, TokenizationSettings
from imdb_deploy.version import __version__

TRAIN_CONFIG = "train_config.json"

# What train_config.json records beside the tokenization settings (TokenizationSettings.to_dict()): every
# folder has every key, None where it does not apply (e.g. `training` for a folder bench built).
TRAIN_CONFIG_FIELDS = (
    "base_model",  # the encoder it was fine-tuned from (Hub id or folder), or the architecture spec
    "base_model_hub_id",  # in a published folder: the Hub id base_model provably is, or None (export.card)
    "tokenizer",  # where the tokenizer came from when it is not the base model's
    "data_source",  # the training data (see imdb_deploy.data)
    "data_samples",  # reviews per split: {"train": n, "validation": n, "test": n}
    "training",  # the full TrainConfig
    "random_weights",  # True for an untrained architecture (bench): accuracy means nothing
    "teacher",  # a distilled student's teacher: its name, sha256, layers and the runtime of its outputs
    "imdb_deploy_version",  # the version that wrote the model
)

# Files in which a model folder can ask transformers to import Python code shipped in the folder.
CUSTOM_CODE_FILES = ("config.json", "tokenizer_config.json")

# Files that hold a tokenizer's vocabulary; a folder needs one of them (tokenizer.json for a fast tokenizer).
VOCABULARY_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "tokenizer.model")

METRICS = "metrics.json"
# What convert-bert writes beside a converted encoder: its source, the source's sha256 and the measured difference.
CONVERSION_REPORT = "conversion.json"

# sha256 of sentence-transformers/all-MiniLM-L6-v2's published model.safetensors (the offline base model's source).
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

EXPORT_REPORT = "export_report.json"

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
        first_line = load_error_detail(exc)
        if is_local_reference(ref):
            path = Path(str(ref)).expanduser()
            if not path.exists():
                raise ModelLoadError(f"{what} {str(ref)!r}: no such file or folder") from exc
            raise ModelLoadError(f"{what} {str(ref)!r} could not be loaded: {first_line}") from exc
        raise HubUnreachableError(
            f"{what} {str(ref)!r} is not a local path, and loading it from the Hugging Face Hub failed "
            f"({first_line}). The Hub may be out of reach from this machine. {hint}"
        ) from exc


def load_error_detail(exc: BaseException) -> str:
    """The first line of a loading error, for a one-line message. A pickle that torch's weights-only loader
    refused is named by what it asked for, without torch's advice to retry with weights_only=False: that
    advice would run the pickle's code, and imdb-deploy never gives it."""
    text = str(exc).strip()
    if "weights_only" in text or "Weights only" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        asked = f"it asks for {found.group(1)}, which is not a tensor" if found else "not tensors only, or damaged"
        return f"a pickle refused by torch's weights-only loader: {asked}"
    line = text.splitlines()[0] if text else type(exc).__name__
    return line.split(". ")[0] if len(line) > 200 else line  # torch's long advice after its first sentence


def check_weight_files(folder: str | os.PathLike, fix: str | None = None) -> None:
    """Refuse weights that cannot be read, in one line naming the file, before transformers, torch or
    accelerate open them (their errors are tracebacks that do not name it): each `*.safetensors` of a local
    folder must hold a whole header and as many bytes as it describes (safe_open reads only the header and
    checks the size), so an empty, cut-short or random file is refused here.

    Args:
        folder: a model folder or a training checkpoint; anything else (a Hub id) is left to the load.
        fix: what to do, when not "copy it again or re-create the folder".

    Raises:
        ModelLoadError: naming the file and the fix.
    """
    folder = Path(str(folder)).expanduser()
    if not folder.is_dir():
        return
    fix = fix or "copy it again from where it came, or re-create the folder with the stage that wrote it"
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="numpy"):
                pass
        except (SafetensorError, OSError) as exc:
            raise ModelLoadError(
                f"{path}: not a readable safetensors file ({load_error_detail(exc)}): it is empty, cut short or "
                f"damaged; {fix}"
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


# The files that hold a model folder's weights, the one a loader takes first first.
WEIGHTS_FILES = ("model.safetensors", "pytorch_model.bin")


def model_weights(model_dir: str | os.PathLike) -> Path:
    """The weights file of a model folder (WEIGHTS_FILES).

    Raises:
        ModelLoadError: the folder has none.
    """
    folder = Path(str(model_dir)).expanduser()
    for name in WEIGHTS_FILES:
        if (folder / name).is_file():
            return folder / name
    raise ModelLoadError(f"{folder}: no model weights ({' or '.join(WEIGHTS_FILES)}); train the model again")


def hub_reference(ref: str | os.PathLike | None) -> str | None:
    """How a folder made to publish names a model or dataset: a Hub id as it is, a local path by its plain folder
    or file name (never a path of the machine that made it)."""
    if ref is None:
        return None
    text = str(ref)
    return Path(text.rstrip("/")).name if is_local_reference(text) else text


def user_cache_dir() -> Path:
    """imdb-deploy's folder in the user cache: $HF_HOME/imdb-deploy, else $XDG_CACHE_HOME or ~/.cache, /imdb-deploy."""
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "imdb-deploy"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "imdb-deploy"
