"""An exported folder that runs where ONNX runs and reads a review the way the model was trained to read it.

Our models keep the head and the tail of a long review (tokenization.encode), a cut no tokenizer file can
express: transformers.js, onnxruntime with `tokenizers`, or optimum would cut at tokenizer_config.json's
`model_max_length` and keep the head only (transformers.js even drops the closing [SEP]). So the cut moves into
the graph:

1. `prepend_truncation` puts a small graph in front of the model (onnx.compose.merge_models, so it works
   whichever exporter wrote model.onnx). It takes the full tokenization of a batch (input_ids, attention_mask
   of any length, with [CLS] and [SEP], padded on the right) and cuts each row as encode() cuts it: positions
   [0, 1 + head_tokens) and the tail that ends at the row's own last real token (its length is the sum of its
   attention_mask). The output is min(length, max_length) wide; a row no longer than that passes unchanged, so
   Predictor, which cuts in Python first, gets the same logits. Head truncation is the same cut with
   head_tokens = max_length - 2 and a tail of [SEP] alone. Prepended to model.onnx before fusion, the fused and
   INT8 graphs carry it too (onnxruntime's optimizer fuses the same operators).
2. `portable_tokenizer_config` lets the tokenizer not cut at all (`model_max_length` is transformers'
   "no limit" value), so the graph sees every token and makes the training cut itself.
3. `transformersjs_folder` lays a folder out as transformers.js loads it: graphs under onnx/ named by its dtypes
   (model.onnx for fp32, model_quantized.onnx for q8, model_fp16.onnx for fp16), config and tokenizer files at
   the root, and the gate's default (INT8 -> q8) as the folder's default dtype.

Run as `python -m imdb_deploy.export.portable EXPORT_DIR OUT_DIR` to write a transformers.js copy of an export.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import onnx
from onnx import TensorProto, compose, helper

from imdb_deploy.errors import ModelLoadError, OutputError
from imdb_deploy.export.exporters import QuantizationSettings, fuse, operator_counts, quantize
from imdb_deploy.fileio import write_json_atomic
from imdb_deploy.folders import EXPORT_REPORT, load_export_report
from imdb_deploy.runtimes.folder import file_checksums
from imdb_deploy.runtimes.onnx import onnx_variants
from imdb_deploy.tokenization import TokenizationSettings

# Where the graph records the cut it makes (ONNX metadata_props), so nothing prepends it twice and a reader of
# the file alone can tell how it reads a review.
TRUNCATION_METADATA = "imdb_deploy.truncation"
# Names of the cut's nodes and outputs; the model's inputs keep their names.
CUT_PREFIX = "truncation/"
INPUTS = ("input_ids", "attention_mask")
# transformers' VERY_LARGE_INTEGER (int(1e30)), what it reads as "this tokenizer has no length limit": the cut
# is the graph's, and any earlier cut by a tokenizer would drop the review's tail (and, in transformers.js, [SEP]).
UNLIMITED_MODEL_MAX_LENGTH = int(1e30)
# transformers.js's dtype names for our graphs (its DEFAULT_DTYPE_SUFFIX_MAPPING: "" fp32, "_quantized" q8,
# "_fp16" fp16); the fused fp32 graph has no dtype name and stays out of its layout.
TRANSFORMERSJS_FILES = {"fp32": "model.onnx", "q8": "model_quantized.onnx", "fp16": "model_fp16.onnx"}
ROOT_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def cut_positions(settings: TokenizationSettings) -> tuple[int, int]:
    """(max_length, head) of the in-graph cut: head = positions kept from the start, [CLS] included."""
    head_tokens = settings.head_tokens if settings.truncation == "head+tail" else settings.max_length - 2
    return settings.max_length, 1 + head_tokens


def truncation_graph(settings: TokenizationSettings, opset: int, ir_version: int) -> onnx.ModelProto:
    """The cut as an ONNX model: inputs input_ids and attention_mask (int64, batch x any length), outputs
    `truncation/input_ids` and `truncation/attention_mask` (batch x min(length, max_length)).

    Per row, with n = sum(attention_mask) and W = min(length, max_length): output position j reads input
    position j + shift * (j >= head), shift = max(n - W, 0). A row with n <= W is copied; a longer one keeps
    [0, head) and its last W - head real tokens, the last being [SEP].

    Args:
        settings: the folder's tokenization (max_length, truncation, head_tokens).
        opset: the default-domain opset of the model it goes in front of (merge_models needs the same).
        ir_version: that model's IR version.
    """
    max_length, head = cut_positions(settings)

    def name(text: str) -> str:
        return CUT_PREFIX + text

    def scalar(value: int) -> onnx.TensorProto:
        return helper.make_tensor("value", TensorProto.INT64, [], [value])

    nodes = [
        helper.make_node("Constant", [], [name("max_length")], value=scalar(max_length)),
        helper.make_node("Constant", [], [name("head")], value=scalar(head)),
        helper.make_node("Constant", [], [name("zero")], value=scalar(0)),
        helper.make_node("Constant", [], [name("one")], value=scalar(1)),
        helper.make_node(
            "Constant", [], [name("axis")], value=helper.make_tensor("value", TensorProto.INT64, [1], [1])
        ),
        helper.make_node("ReduceSum", ["attention_mask", name("axis")], [name("n")], keepdims=1),
        helper.make_node("Shape", ["input_ids"], [name("length_1d")], start=1, end=2),
        helper.make_node("Squeeze", [name("length_1d")], [name("length")]),
        helper.make_node("Min", [name("length"), name("max_length")], [name("width")]),
        helper.make_node("Range", [name("zero"), name("width"), name("one")], [name("j")]),
        helper.make_node("Sub", [name("n"), name("width")], [name("excess")]),
        helper.make_node("Max", [name("excess"), name("zero")], [name("shift")]),
        helper.make_node("GreaterOrEqual", [name("j"), name("head")], [name("in_tail_bool")]),
        helper.make_node("Cast", [name("in_tail_bool")], [name("in_tail")], to=TensorProto.INT64),
        helper.make_node("Mul", [name("shift"), name("in_tail")], [name("offset")]),
        helper.make_node("Add", [name("j"), name("offset")], [name("source")]),
        *(helper.make_node("GatherElements", [x, name("source")], [name(x)], axis=1) for x in INPUTS),
    ]
    graph = helper.make_graph(
        nodes,
        "truncation",
        [helper.make_tensor_value_info(x, TensorProto.INT64, ["batch_size", "sequence_length"]) for x in INPUTS],
        [helper.make_tensor_value_info(name(x), TensorProto.INT64, ["batch_size", "cut_length"]) for x in INPUTS],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version)
    onnx.checker.check_model(model)
    return model


def graph_truncation(path: str | os.PathLike) -> dict | None:
    """The cut a graph file makes itself (its TRUNCATION_METADATA), or None when it makes none."""
    model = onnx.load(str(path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == TRUNCATION_METADATA:
            return json.loads(prop.value)
    return None


def _truncation_record(settings: TokenizationSettings) -> dict:
    max_length, head = cut_positions(settings)
    return {
        "max_length": max_length,
        "truncation": settings.truncation,
        "head_positions": head,
        "rule": "per row: positions [0, head_positions) and the tail ending at the row's last real token "
        "(sum of attention_mask), max_length in all; shorter rows pass unchanged; pad on the right",
    }


def prepend_truncation(
    source: str | os.PathLike, target: str | os.PathLike, settings: TokenizationSettings
) -> onnx.ModelProto:
    """Write `target`: the graph of `source` with the training cut in front of it (see truncation_graph).

    `source` and `target` may be the same file. A graph that already makes this cut is written unchanged.

    Args:
        source: an ONNX classifier taking input_ids and attention_mask (int64); fp32, fused or INT8.
        target: where the composed graph goes.
        settings: the folder's tokenization (train_config.json).

    Returns:
        The model written.

    Raises:
        ModelLoadError: the graph lacks those inputs, or already makes another cut.
    """
    model = onnx.load(str(source))
    record = _truncation_record(settings)
    present = next((json.loads(p.value) for p in model.metadata_props if p.key == TRUNCATION_METADATA), None)
    if present is not None:
        if present != record:
            raise ModelLoadError(f"{source}: already cuts reviews another way ({present}); re-export it")
        onnx.save(model, str(target))
        return model
    names = [x.name for x in model.graph.input]
    if not set(INPUTS) <= set(names) or set(names) - {*INPUTS, "token_type_ids"}:
        raise ModelLoadError(f"{source}: inputs {names}; the cut needs a graph of input_ids and attention_mask")
    opset = next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))
    cut = truncation_graph(settings, opset, model.ir_version)
    merged = compose.merge_models(cut, model, io_map=[(CUT_PREFIX + x, x) for x in INPUTS])
    # merge_models lists the default domain once per graph; onnxruntime's quantizer wants it once.
    versions: dict[str, int] = {}
    for entry in merged.opset_import:
        versions.setdefault(entry.domain, entry.version)
    del merged.opset_import[:]
    merged.opset_import.extend(helper.make_opsetid(domain, version) for domain, version in versions.items())
    # The exporter's name, so onnxruntime's optimizer recognises the graph as before.
    merged.producer_name, merged.producer_version = model.producer_name, model.producer_version
    merged.graph.name = model.graph.name
    helper.set_model_props(
        merged, {**{p.key: p.value for p in model.metadata_props}, TRUNCATION_METADATA: json.dumps(record)}
    )
    onnx.checker.check_model(merged)
    onnx.save(merged, str(target))
    return merged


def portable_tokenizer_config(folder: str | os.PathLike) -> Path:
    """Set tokenizer_config.json's `model_max_length` so that no tokenizer cuts before the graph does.

    Every graph of an export made with prepend_truncation cuts a review as training did, and a tokenizer cut
    earlier would lose the tail (transformers.js's also drops [SEP]); so the limit is transformers' "none"
    (UNLIMITED_MODEL_MAX_LENGTH). The training length stays in train_config.json and in the graphs' metadata.

    Returns:
        The file written.

    Raises:
        ModelLoadError: the folder has no tokenizer_config.json.
    """
    path = Path(folder) / "tokenizer_config.json"
    if not path.is_file():
        raise ModelLoadError(f"{path}: missing; re-export the folder")
    config = json.loads(path.read_text())
    config["model_max_length"] = UNLIMITED_MODEL_MAX_LENGTH
    return write_json_atomic(path, config)


def transformersjs_folder(export_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Copy an exported folder into the layout transformers.js loads (`pipeline("text-classification", ...)`).

    Graphs go under onnx/ by dtype (TRANSFORMERSJS_FILES), config and tokenizer files stay at the root
    (hard links where the file system allows, copies otherwise); train_config.json, export_report.json and
    README.md come along when present. config.json gains `transformers.js_config.dtype` "q8" when the INT8
    graph is there, so the library's default is onnxruntime's default variant, as Predictor's is.

    Args:
        export_dir: a folder written by `imdb-deploy export` whose graphs cut reviews themselves
            (prepend_truncation); a graph that does not is refused, since the library would cut otherwise.
        out_dir: the new folder (must not exist).

    Returns:
        out_dir.

    Raises:
        ModelLoadError: no graph transformers.js can load, or one without the in-graph cut.
        OutputError: out_dir exists.
    """
    source, out = Path(export_dir), Path(out_dir)
    if out.exists():
        raise OutputError(f"{out}: exists; remove it or name another folder")
    present = onnx_variants(source)
    variants = {"fp32": "fp32", "q8": "int8", "fp16": "fp16"}
    graphs = {dtype: present[variant] for dtype, variant in variants.items() if variant in present}
    if not graphs:
        raise ModelLoadError(f"{source}: no {', '.join(TRANSFORMERSJS_FILES.values())}; export it first")
    for path in graphs.values():
        if graph_truncation(path) is None:
            raise ModelLoadError(
                f"{path}: cuts no review itself, so transformers.js would keep the head only; "
                "re-export it (or run imdb_deploy.export.portable.prepend_truncation on it)"
            )
    (out / "onnx").mkdir(parents=True)
    for name in (*ROOT_FILES, "train_config.json", EXPORT_REPORT, "README.md"):
        if (source / name).is_file():
            _link_or_copy(source / name, out / name)
    for dtype, path in graphs.items():
        _link_or_copy(path, out / "onnx" / TRANSFORMERSJS_FILES[dtype])
    # Both rewrites replace the hard link (write to a temporary name, then rename): the export stays as it was.
    portable_tokenizer_config(out)
    if "q8" in graphs:
        default_dtype(out, "q8")
    return out


def default_dtype(folder: str | os.PathLike, dtype: str) -> Path:
    """Name transformers.js's default dtype in a folder's config.json (`transformers.js_config.dtype`)."""
    path = Path(folder) / "config.json"
    config = json.loads(path.read_text())
    config["transformers.js_config"] = {**config.get("transformers.js_config", {}), "dtype": dtype}
    return write_json_atomic(path, config)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def with_truncation(export_dir: str | os.PathLike, out_dir: str | os.PathLike) -> dict:
    """A copy of an export made before the cut was inside the graphs, rebuilt as export builds it now.

    model.onnx gets the cut (prepend_truncation); the fused graph is fused again from it and the INT8 graph
    quantized again, with the settings export_report.json recorded, so the copy shows what the export stage
    would write. tokenizer_config.json gets no limit. The gate is not run again: the copy's report keeps the
    original gate's results, sets `verified` to False and says why (`imdb-deploy verify OUT_DIR --record`
    gates it), and records the new files' checksums and fused operators.

    Args:
        export_dir: a folder written by `imdb-deploy export` (ONNX variants only; OpenVINO IRs are not copied).
        out_dir: the copy (must not exist).

    Returns:
        {variant: {"before": operators, "after": operators}} for each ONNX variant rebuilt.
    """
    source, out = Path(export_dir), Path(out_dir)
    report = load_export_report(source)
    settings = TokenizationSettings.from_dict(json.loads((source / "train_config.json").read_text()))
    model_config = json.loads((source / "config.json").read_text())
    out.mkdir(parents=True)
    for path in sorted(source.iterdir()):
        if path.is_file() and not path.name.startswith("openvino") and path.name != EXPORT_REPORT:
            shutil.copy2(path, out / path.name)
    prepend_truncation(out / "model.onnx", out / "model.onnx", settings)
    recorded = report.get("settings") or {}
    if (out / "model_optimized.onnx").is_file():
        fuse(
            out / "model.onnx",
            out / "model_optimized.onnx",
            recorded.get("optimize") or "O2",
            num_heads=int(model_config.get("n_heads") or model_config.get("num_attention_heads")),
            hidden_size=int(model_config.get("dim") or model_config.get("hidden_size")),
        )
    quantization = recorded.get("quantization")
    if quantization and (out / "model_quantized.onnx").is_file():
        fields = {key: value for key, value in quantization.items() if key != "source"}
        fields["operators"] = tuple(fields.get("operators") or ())
        fields.setdefault("target", recorded.get("quantize_target") or "auto")  # exports before 0.2.0 kept it here
        quantize(
            out / quantization.get("source", "model_optimized.onnx"),
            out / "model_quantized.onnx",
            QuantizationSettings(**fields),
        )
    if (out / "model_fp16.onnx").is_file():
        prepend_truncation(out / "model_fp16.onnx", out / "model_fp16.onnx", settings)
    portable_tokenizer_config(out)
    changes = {}
    variants = {}
    for name, entry in (report.get("variants") or {}).items():
        if (out / entry.get("file", "")).is_file() and entry["file"].endswith(".onnx"):
            after = operator_counts(out / entry["file"])
            before = entry.get("operators") or operator_counts(source / entry["file"])  # older reports lack them
            changes[name] = {"before": before, "after": after}
            variants[name] = {**entry, "bytes": (out / entry["file"]).stat().st_size, "operators": after}
    present = onnx_variants(out)
    report.update(
        output=str(out),
        variants=variants,
        default_variant=(
            report.get("default_variant") if report.get("default_variant") in present else next(iter(present))
        ),
        verified=False,
        checksums=file_checksums(out),
        warnings=[
            *report.get("warnings", []),
            "graphs rebuilt with the training cut inside (imdb_deploy.export.portable.with_truncation); the parity "
            "results are the original graphs': run `imdb-deploy verify` on this folder with --record to gate these",
        ],
    )
    write_json_atomic(out / EXPORT_REPORT, report)
    return changes


def main(argv: list[str] | None = None) -> int:
    """`python -m imdb_deploy.export.portable EXPORT_DIR OUT_DIR`: a transformers.js copy of an export."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.stderr.write("usage: python -m imdb_deploy.export.portable EXPORT_DIR OUT_DIR\n")
        return 2
    try:
        print(transformersjs_folder(*args))
    except (ModelLoadError, OutputError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
