"""The one place that opens model folders: the tokenizer and the PyTorch classifier of a trained folder or Hub id
(never running code from the folder), and an exported ONNX folder, opened once: its files and their checksums,
variants, tokenizer, settings, labels, and the parity gate's verdict.

`ExportFolder` is what Predictor, serve, the Ray job, bench and verify take (or the path they open through
it), so each reads `export_report.json`, `config.json` and the tokenizer files one time.

A verdict is tied to the files it judged: `export` records the sha256 of every file it wrote in
export_report.json (`checksums`), and `check_files` hashes the files a runtime is about to load (one graph
with its external data as the graph names it, the tokenizer files, config.json, train_config.json) and refuses
any that changed since; a recorded name that is not a plain file name in the folder, or a link out of it, is
refused before any file is opened. Each file is hashed once per process (a cache keyed by path, device, inode,
size and mtime), so opening the same folder again costs a few `stat` calls. A folder exported before checksums
were recorded loads, marked unverified, with the hint to record them (`imdb-deploy verify DIR --record`).
"""

from __future__ import annotations

import os
import pickle
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors, uses_external_data
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from imdb_deploy.errors import ModelLoadError
from imdb_deploy.fileio import sha256_file
from imdb_deploy.folders import (
    EXPORT_REPORT,
    TRAIN_CONFIG,
    VOCABULARY_FILES,
    check_weight_files,
    hub_errors,
    is_local_reference,
    load_error_detail,
    load_settings,
    model_weights,
    read_json,
    refuse_custom_code,
)
from imdb_deploy.runtimes.choice import recorded_default
from imdb_deploy.runtimes.config import ONNX_FOLDER, OPENVINO_VARIANTS, unavailable_reason
from imdb_deploy.runtimes.onnx import onnx_variants, pick_onnx_variant
from imdb_deploy.tokenization import LABEL_NAMES


def load_tokenizer(model_ref: str | os.PathLike, code_checked: bool = False):
    """The fast tokenizer of a model folder or Hub id; never runs code from the folder.

    Args:
        model_ref: the folder or Hub id.
        code_checked: refuse_custom_code already ran on this folder (model_folder.ExportFolder runs it once).

    Raises:
        ModelLoadError: the folder asks for custom code, or has no usable tokenizer files.
        HubUnreachableError: a Hub id could not be fetched.
    """

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
    _refuse_ids_past_the_embeddings(folder if is_local_reference(model_ref) else None, tokenizer)
    return tokenizer


def _refuse_ids_past_the_embeddings(folder: Path | None, tokenizer) -> None:
    """Refuse a tokenizer that can give ids the model has no embedding for (more tokens than config.json's
    vocab_size): every review holding such a token would fail deep inside torch or onnxruntime."""
    config = folder / "config.json" if folder is not None else None
    if config is None or not config.is_file():
        return
    data = read_json(config)
    size = data.get("vocab_size") if isinstance(data, dict) else None
    if isinstance(size, int) and not isinstance(size, bool) and len(tokenizer) > size:
        raise ModelLoadError(
            f"{folder}: the tokenizer has {len(tokenizer):,} tokens but {config.name}'s vocab_size is {size:,}, so "
            f"token ids {size:,} and above have no embedding; use the tokenizer files the model was trained with "
            "(copy them from its folder), or re-create the folder with the stage that wrote it"
        )


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

    refuse_custom_code(model_ref)
    if is_local_reference(model_ref):
        check_weight_files(model_ref)
    # The "newly initialized head" warning is expected for a base encoder; transformers 5's "Loading weights"
    # bar is noise for a folder that loads at once.
    try:
        with transformers_quiet(bars=False, warnings=False), hub_errors(model_ref, "Model"):
            model = AutoModelForSequenceClassification.from_pretrained(
                str(model_ref),
                trust_remote_code=False,
                attn_implementation=attn_implementation,
                num_labels=num_labels,
                id2label=dict(enumerate(label_names)),
                label2id={name: i for i, name in enumerate(label_names)},
            )
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:  # a damaged or refused pickle: no code ran
        weights = Path(str(model_ref)).expanduser()
        weights = next(iter(sorted(weights.glob("*.bin"))), weights) if weights.is_dir() else weights
        if isinstance(exc, pickle.UnpicklingError):
            fix = "imdb-deploy loads weights only and never runs a checkpoint's code"
        else:
            fix = "the file is damaged or does not fit config.json"
        raise ModelLoadError(
            f"{weights}: could not be loaded ({load_error_detail(exc)}); {fix}: get the weights as model.safetensors "
            "from a source you trust, or re-create the folder with the stage that wrote it"
        ) from exc
    return model.eval()


@contextmanager
def transformers_quiet(bars: bool = False, warnings: bool = True) -> Iterator[None]:
    """transformers' own progress bars (off unless `bars`) and warnings (errors only unless `warnings`) for the
    block, restored after it."""
    verbosity, enabled = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    if not warnings:
        hf_logging.set_verbosity_error()
    if not bars:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if enabled:
            hf_logging.enable_progress_bar()
        else:
            hf_logging.disable_progress_bar()


# Files a runtime reads besides its graph: each must be covered by the recorded checksums when present.
TOKENIZER_FILES = (*VOCABULARY_FILES, "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")

CONFIG_FILES = ("config.json", TRAIN_CONFIG)

# Suffixes of model graphs and their weights: a runtime checks only the graph it loads (and its companions),
# so a folder's other variants are not hashed on every load.
GRAPH_SUFFIXES = (".onnx", ".xml", ".bin", "_data", ".data")

UNVERIFIED_HINT = "pass --allow-unverified (allow_unverified=True in Python) to run it anyway"


def file_checksums(folder: str | os.PathLike, names=None) -> dict[str, dict]:
    """{name: {"sha256", "bytes"}} for the named files of a folder (default: every plain, visible file but
    export_report.json), as export_report.json records them."""
    folder = Path(folder)
    names = checksummed_names(folder) if names is None else names
    return {name: {"sha256": sha256_file(folder / name), "bytes": (folder / name).stat().st_size} for name in names}


def checksummed_names(folder: str | os.PathLike) -> list[str]:
    """The files of a folder that export_report.json records checksums of: every plain, visible file but it, at the
    root and in onnx/ (ONNX_FOLDER), by their path inside the folder ("onnx/model.onnx")."""
    folder = Path(folder)
    paths = [*sorted(folder.iterdir()), *sorted((folder / ONNX_FOLDER).glob("*"))]
    return [
        p.relative_to(folder).as_posix()
        for p in paths
        if p.is_file() and not p.is_symlink() and not p.name.startswith(".") and p.name != EXPORT_REPORT
    ]


def graph_companions(graph: Path) -> list[Path]:
    """The files that hold a graph's weights beside it (present or not): ONNX external data (NAME_data, NAME.data
    and the files the graph itself names, whatever their names), an IR's .bin."""
    if graph.suffix == ".xml":
        return [graph.with_suffix(".bin")]
    named = [graph.with_name(name) for name in external_data_names(graph) if is_plain_name(name)]
    return list(dict.fromkeys([graph.with_name(graph.name + "_data"), graph.with_name(graph.name + ".data"), *named]))


_external: dict[tuple[str, int, int, int, int], tuple[str, ...]] = {}
_external_lock = threading.Lock()


def external_data_names(graph: str | os.PathLike) -> tuple[str, ...]:
    """The external data files an ONNX graph names (its tensors' `location` entries, as written), read without
    loading any weights; () for a file that is not a readable ONNX graph. Cached like sha256_file."""
    graph = Path(graph)
    if graph.suffix != ".onnx" or not graph.is_file():
        return ()
    stat = graph.stat()
    key = (str(graph.resolve()), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _external_lock:
        known = _external.get(key)
    if known is None:
        try:
            model = onnx.load(graph, load_external_data=False)
        except (DecodeError, OSError, ValueError):  # damaged: its checksum (or the runtime) says so
            return ()
        tensors = [tensor for tensor in _get_all_tensors(model) if uses_external_data(tensor)]
        known = tuple(dict.fromkeys(ExternalDataInfo(tensor).location for tensor in tensors))
        with _external_lock:
            _external[key] = known
    return known


def is_plain_name(name) -> bool:
    """True for a file name inside a folder: a non-empty string without a folder part, "..", or a NUL."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and os.sep not in name
        and "\0" not in name
    )


def is_name_in_folder(name) -> bool:
    """True for the path of a file inside a folder as the checksums record it: plain names joined by "/"
    ("tokenizer.json", "onnx/model.onnx"), never absolute, never "..", no backslash or NUL."""
    return isinstance(name, str) and all(is_plain_name(part) for part in name.split("/"))


@dataclass(frozen=True)
class FileCheck:
    """What `ExportFolder.check_files` found.

    Attributes:
        status: "match" (every file the runtime loads is the one the export recorded), "unrecorded" (the
            report records no checksums: an export made before they were), or "mismatch" / "unreadable"
            (a changed file, or a broken report, run anyway because allow_unverified was given).
        reason: one line for people when status is not "match".
        files: the names checked.
    """

    status: str
    reason: str | None = None
    files: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        return self.status == "match"


class ExportFolder:
    """A folder written by `imdb-deploy export`, read once.

    Args:
        path: the folder.

    Attributes:
        path: the folder, as given.
        report: its export_report.json ({} when it has none, or it cannot be read: see `report_problem`).
        variants: the ONNX variants present, by name (artifacts.ONNX_VARIANTS).
        openvino_variants: the OpenVINO IRs present (.xml and .bin), by name (openvino_runtime.OPENVINO_VARIANTS).
        tokenizer, settings, label_names: loaded on first use, once.

    Raises:
        ModelLoadError: the folder is missing, or asks to run code (artifacts.refuse_custom_code).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(str(path))
        if not self.path.is_dir():
            raise ModelLoadError(f"ONNX folder {str(path)!r}: no such folder; create it with `imdb-deploy export`")
        refuse_custom_code(self.path)
        self.variants = onnx_variants(self.path)
        self.openvino_variants = openvino_variants(self.path)  # present whether or not the runtime is installed
        self.report: dict = {}
        self.report_problem: str | None = None
        if (self.path / EXPORT_REPORT).is_file():
            try:
                report = read_json(self.path / EXPORT_REPORT)
            except ModelLoadError as exc:
                self.report_problem = str(exc)
            else:
                if isinstance(report, dict):
                    self.report = report
                else:
                    self.report_problem = (
                        f"{self.path / EXPORT_REPORT}: expected a JSON object, got {type(report).__name__}; "
                        "re-export the folder"
                    )

    def __repr__(self) -> str:
        return f"ExportFolder({str(self.path)!r})"

    @cached_property
    def tokenizer(self):
        return load_tokenizer(self.path, code_checked=True)  # refused at open if it asks for code

    @cached_property
    def settings(self):
        return load_settings(self.path, self.tokenizer)

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(self.settings.label_names)

    def resolve_variant(self, variant: str = "auto", gpu: bool = False) -> tuple[str, Path]:
        """(name, file) of the variant a Predictor runs.

        "auto" on the CPU takes the folder's measured `default_variant` (runtime_choice.recorded_default, which
        warns when the folder moved to a CPU with other ISA flags) and otherwise onnxruntime's default
        (artifacts.pick_onnx_variant); an openvino-* name takes that IR.

        Raises:
            ModelLoadError: the variant or its runtime is missing.
        """
        if variant in OPENVINO_VARIANTS:
            if gpu:
                raise ModelLoadError(f"variant {variant!r} runs on OpenVINO's CPU plugin; use --provider cpu")
            return variant, resolve_openvino_variant(self.path, variant)
        name, path = pick_onnx_variant(self.path, self.variants, variant, gpu)
        if variant == "auto" and not gpu:
            available = list(self.variants)
            if self.openvino_variants and unavailable_reason() is None:
                available += list(self.openvino_variants)
            chosen = recorded_default(self.path, self.report, available)
            if chosen and chosen != name:
                return self.resolve_variant(chosen)
        return name, path

    def check_files(self, graph: str | os.PathLike, allow_unverified: bool = False) -> FileCheck:
        """Hash the files a runtime of `graph` loads and compare them with the recorded checksums.

        Args:
            graph: the graph file about to be loaded (an ONNX variant, or an OpenVINO IR .xml).
            allow_unverified: run a changed file (or a broken report) anyway, reported in the result.

        Returns:
            The check; `verified` is True only when every file matched.

        Raises:
            ModelLoadError: a file differs from, or is missing from, the recorded checksums, or the report
                cannot be read, and allow_unverified is False. One line naming the file and the fix.
        """
        graph = Path(graph)
        if self.report_problem is not None:
            return self._refuse_or_allow("unreadable", self.report_problem, allow_unverified, ())
        recorded = self.report.get("checksums")
        if not isinstance(recorded, dict) or not recorded:
            if not self.report:
                reason = f"{self.path}: no {EXPORT_REPORT}, so no gate's verdict and no checksums; re-export it"
            else:
                reason = (
                    f"{self.path}: {EXPORT_REPORT} records no checksums (exported before imdb-deploy recorded "
                    "them), so its files cannot be tied to the gate's verdict; run "
                    f"`imdb-deploy verify {self.path} --record` to record them"
                )
            return FileCheck("unrecorded", reason)
        # Before any file is opened: every recorded name is a plain name in the folder, and neither the graph
        # nor any file checked is a link that leads out of it (a report must not make us read /etc/...).
        bad = next((name for name in recorded if not is_name_in_folder(name)), None)
        if bad is not None:
            problem = (
                f"{self.path / EXPORT_REPORT}: its checksums name {bad!r}, which is not a file name inside the folder "
                "(a name, or onnx/NAME; not absolute, no '..')"
            )
            return self._refuse_or_allow("unreadable", problem, allow_unverified, ())
        problem = self._outside(self._name(graph))
        if problem is None:
            bad = next((name for name in external_data_names(graph) if not is_plain_name(name)), None)
            if bad is not None:
                problem = f"{graph}: names its external data {bad!r}, which is not a file inside the folder"
        needed = self._needed(graph, recorded) if problem is None else []
        problem = problem or next(filter(None, map(self._outside, needed)), None)
        if problem is not None:
            return self._refuse_or_allow("unreadable", problem, allow_unverified, ())
        for name in needed:
            path = self.path / name
            entry = recorded.get(name)
            if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
                problem = f"{path}: has no checksum in {EXPORT_REPORT} (the export never recorded it)"
            elif not path.is_file():
                problem = f"{path}: missing, but {EXPORT_REPORT} recorded it"
            elif sha256_file(path) != entry["sha256"]:
                problem = f"{path}: changed since export (its sha256 differs from the one {EXPORT_REPORT} recorded)"
            else:
                continue
            return self._refuse_or_allow("mismatch", problem, allow_unverified, tuple(needed))
        return FileCheck("match", None, tuple(needed))

    def _outside(self, name: str) -> str | None:
        """Why the folder's file `name` must not be read (a link that leads out of the folder), or None."""
        path = self.path / name
        if not path.is_symlink():
            return None
        target = path.resolve()
        if self.path.resolve() in target.parents:
            return None
        return f"{path}: a link to {target}, outside the folder; put the file itself in the folder"

    def _needed(self, graph: Path, recorded: dict) -> list[str]:
        """The names to check for `graph`: it and its companions, the config and tokenizer files (recorded or
        present), and every other recorded file still present that is not another graph."""
        own = [self._name(p) for p in [graph, *graph_companions(graph)]]
        essential = {*CONFIG_FILES, *TOKENIZER_FILES, *own}
        names = [
            name
            for name in recorded
            if name in essential or (not name.endswith(GRAPH_SUFFIXES) and (self.path / name).is_file())
        ]
        present = [name for name in own if (self.path / name).is_file()]
        present += [name for name in (*CONFIG_FILES, *TOKENIZER_FILES) if (self.path / name).is_file()]
        return list(dict.fromkeys([*present, *names]))

    def _name(self, path: Path) -> str:
        """A file's name as the checksums record it: its path inside the folder ("onnx/model.onnx")."""
        return Path(path).relative_to(self.path).as_posix()

    def _refuse_or_allow(self, status: str, problem: str, allow: bool, files: tuple[str, ...]) -> FileCheck:
        if not allow:
            raise ModelLoadError(
                f"{problem}; re-export the folder (or check it with `imdb-deploy verify {self.path} --record`), "
                f"or {UNVERIFIED_HINT}"
            )
        return FileCheck(status, f"{problem}; running it because unverified files were allowed", files)

    def verdict(self, variant: str, files: FileCheck | None = None) -> dict:
        """The parity gate's verdict for one variant, as a server's /info shows it.

        `verified` is True only when the gate passed on every variant and `files` (the check of the files
        loaded) matched; otherwise `reason` says why not.
        """
        reasons = []
        if files is not None and not files.verified:
            reasons.append(files.reason)
        if self.report_problem is not None or not self.report:
            out = {"verified": False, "reason": self.report_problem or f"no {EXPORT_REPORT} in the model folder"}
            return out | ({"files": files.status} if files is not None and not files.verified else {})
        parity = self.report.get("parity")
        verified = bool(self.report.get("verified")) and not reasons
        if not isinstance(parity, dict) or not parity:
            reasons.insert(0, "exported without the parity gate (--no-verify)")
            out = {"verified": verified, "reason": "; ".join(reasons)}
            return out | ({"files": files.status} if files is not None and not files.verified else {})
        checked = (parity.get("variants") or {}).get(variant)
        out = {
            "verified": verified,
            "gate_passed": parity.get("passed"),
            "data": parity.get("data"),
            "split": parity.get("split"),
            "samples": parity.get("samples"),
            "pytorch_accuracy": parity.get("pytorch_accuracy"),
        }
        if isinstance(checked, dict):
            out["variant"] = {
                key: checked.get(key)
                for key in ("accuracy", "accuracy_change", "agreement", "max_prob_diff", "flip_count", "passed")
            }
        else:
            out["variant"] = None
            reasons.append(f"the gate did not check the {variant} variant")
        if reasons:
            out["reason"] = "; ".join(reasons)
        if files is not None and not files.verified:
            out["files"] = files.status
        return out


def open_folder(folder: str | os.PathLike | ExportFolder) -> ExportFolder:
    """`folder` itself when it is already open, else ExportFolder(folder)."""
    return folder if isinstance(folder, ExportFolder) else ExportFolder(folder)


def graph_bytes(path: str | os.PathLike) -> int:
    """Size of a graph on disk: an .onnx file (plus external data), or an IR's .xml plus its .bin."""
    path = Path(path)
    companions = [path.with_suffix(".bin")] if path.suffix == ".xml" else [path.with_name(path.name + "_data")]
    return path.stat().st_size + sum(p.stat().st_size for p in companions if p.is_file())


def openvino_variants(onnx_dir: str | os.PathLike) -> dict[str, Path]:
    """The OpenVINO variants present in an exported folder (their .xml and .bin both there), by name."""
    folder = Path(str(onnx_dir))
    present = {}
    for name, file in OPENVINO_VARIANTS.items():
        path = folder / file
        if path.is_file() and path.with_suffix(".bin").is_file():
            present[name] = path
    return present


def resolve_openvino_variant(onnx_dir: str | os.PathLike, variant: str) -> Path:
    """The IR of an openvino-* variant in an exported folder.

    Raises:
        ModelLoadError: the extra is missing, or the folder has no such IR (naming how to write it).
    """
    reason = unavailable_reason()
    if reason:
        raise ModelLoadError(f"variant {variant!r} runs on OpenVINO, but {reason}")
    folder = Path(str(onnx_dir))
    present = openvino_variants(folder)
    if variant not in present:
        raise ModelLoadError(
            f"{folder}: has no {variant} model ({OPENVINO_VARIANTS[variant]} and its .bin); write it with "
            "`imdb-deploy export MODEL_DIR --quantize` where the openvino extra is installed"
        )
    return present[variant]


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


def source_model(onnx_dir: str | os.PathLike | ExportFolder) -> str:
    """The PyTorch model an export came from, found from its export_report.json, which names no path of the
    machine that made it: a Hub id is itself; a local model is recorded by its folder name and the sha256 of its
    weights (`source_sha256`) and found as the folder of that name beside the export (export's default output is
    MODEL_DIR-onnx) holding those very weights. An older report's absolute path is taken as it is.

    Raises:
        ModelLoadError: the folder has no report, the report names no source, or the source is not beside the
            export (naming --model, the fix).
    """
    folder = open_folder(onnx_dir)
    source, sha256 = folder.report.get("source_model"), folder.report.get("source_sha256")
    if not source:
        raise ModelLoadError(
            f"{folder.path}: no {EXPORT_REPORT} naming the PyTorch model it was exported from; "
            "pass the original with --model MODEL_DIR"
        )
    if not sha256:  # a Hub id, or an older report's absolute path
        return str(source)
    sibling = folder.path.resolve().parent / str(source)
    try:
        if sibling.is_dir() and sha256_file(model_weights(sibling)) == sha256:
            return str(sibling)
    except ModelLoadError:
        pass
    raise ModelLoadError(
        f"{folder.path}: exported from the model folder {str(source)!r} (weights sha256 {sha256[:12]}...), which is "
        "not beside it; pass the original with --model MODEL_DIR"
    )
