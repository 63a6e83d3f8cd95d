"""OpenVINO as a second CPU runtime for an exported ONNX folder (the optional `openvino` extra: openvino + nncf).

- The variants `openvino-int8` (nncf static INT8, `openvino_int8.xml/.bin`) and `openvino-fp32` (the fp32 graph
  as IR, `openvino_fp32.xml/.bin`, compiled at the precision the CPU plugin picks) that `export --quantize`
  writes and gates where the extra is installed (`write_variants`), and `predict.Predictor` runs through
  `PerReviewRunner`: one review per infer request (shape 1 x its own length: no padding, no neighbours, so a
  review's answer cannot depend on its batch), as many requests in flight as cores (`ov.AsyncInferQueue`
  over THROUGHPUT streams of one thread each), results put back in input order.
- `OpenVINOModel` reads a graph of a folder written by `imdb-deploy export`, compiles it for the CPU with the
  given threads and performance hint, and scores reviews in the same length-sorted, token-capped batches as
  `predict.Predictor` (tokenization.length_sorted_batches and tokenization.pad), with the folder's tokenizer and
  tokenization settings: the same reviews give the same token ids.
- `quantize_static` is nncf's static INT8 (`nncf.quantize`, `ModelType.TRANSFORMER`): activation scales are
  calibrated once, on training reviews, and fixed in the graph (saved as OpenVINO IR, `openvino_int8.xml/.bin`).

What OpenVINO does with the exported graphs (openvino 2026.4, checked on the tiny test model and the fine-tuned
MiniLM): its ONNX frontend keeps the dynamic `batch_size` and `sequence_length` axes (inputs `[?, ?]`), so no
reshape is needed and each batch pads only to its own longest review. It reads `model.onnx` and
`model_optimized.onnx` (it knows onnxruntime's fused contrib ops) but not `model_quantized.onnx` (no conversion
rule for com.microsoft.QAttention): its INT8 comes from nncf instead. It runs the plain graph faster than the
fused one (research/README.md, openvino_compare.py), so bench compiles `model.onnx`. What is not INT8 runs at
the precision the CPU plugin picks (INFERENCE_PRECISION_HINT): bf16 on CPUs with AVX512-BF16 or AMX, f32
elsewhere; `precision="f32"` forces full precision. `info` records what it picked. Batched (OpenVINOModel,
bench's rows), only f32 is batch-invariant: bf16 and static INT8 move a review's probability between batchings
(research/README.md, openvino_compare.py: fixed scales, but the float parts round differently per batch shape,
and a value crossing a rounding boundary moves a whole
quantization step). That is why the Predictor variants run one review per request: a review then always has the
same shape, the same kernels and one thread, whatever else is in flight (the gate checks it: 0 difference).
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from collections.abc import Sequence
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np

from imdb_deploy.errors import ConfigError, ModelLoadError
from imdb_deploy.fileio import atomic_file
from imdb_deploy.folders import load_settings
from imdb_deploy.machine import physical_cores
from imdb_deploy.runtimes.config import (
    _INSTALL_HINT,
    FP32_IR,
    INT8_IR,
    ONNX_SOURCES,
    ONNX_VARIANTS,
    PERFORMANCE_HINTS,
    PRECISIONS,
)
from imdb_deploy.runtimes.folder import graph_bytes, load_tokenizer
from imdb_deploy.runtimes.onnx import onnx_path, onnx_variants
from imdb_deploy.tokenization import encode, length_sorted_batches, pad


def _openvino():
    try:
        import openvino
    except ImportError as exc:
        raise ModelLoadError(f"openvino is not installed: {_INSTALL_HINT}") from exc
    return openvino


def resolve_graph(model_dir: str | os.PathLike, graph: str = "fp32") -> Path:
    """The file OpenVINO reads for `graph` in an exported folder.

    Args:
        model_dir: folder written by `imdb-deploy export`.
        graph: "fp32" or "optimized" (ONNX variants), "int8" (the IR quantize_static wrote into the folder), or
            the path of an .onnx or .xml file.

    Raises:
        ModelLoadError: the folder or the file is missing, or `graph` names an ONNX variant OpenVINO cannot read.
    """
    folder = Path(str(model_dir))
    if graph in ONNX_SOURCES:
        path = onnx_variants(folder).get(graph, onnx_path(folder, graph))
    elif graph == "int8":
        path = folder / INT8_IR
    elif graph in ONNX_VARIANTS:
        raise ModelLoadError(
            f"graph {graph!r}: OpenVINO cannot read {ONNX_VARIANTS[graph]} (onnxruntime-only ops); "
            f"use {', '.join(ONNX_SOURCES)} or int8 (static INT8 by nncf)"
        )
    else:
        path = Path(graph)
    if not path.is_file():
        hint = "write it with quantize_static" if graph == "int8" else "create it with `imdb-deploy export`"
        raise ModelLoadError(f"{path}: no such file; {hint}")
    return path


class OpenVINOModel:
    """An exported model compiled by OpenVINO for the CPU, scoring reviews in Predictor's batches.

    Args:
        model_dir: folder written by `imdb-deploy export` (tokenizer, train_config.json, the graphs).
        graph: what to compile (see resolve_graph), or an `openvino.Model` already in memory (e.g. from
            quantize_static) together with `model_path`.
        threads: INFERENCE_NUM_THREADS; None lets OpenVINO use every core.
        hint: PERFORMANCE_HINT, one of PERFORMANCE_HINTS.
        precision: INFERENCE_PRECISION_HINT, one of PRECISIONS (None: the plugin's choice).
        batch_size: most reviews in one call (Predictor's default is predict.DEFAULT_BATCH_SIZE).
        max_tokens: most padded tokens in one call; None for no cap.
        model_path: the file an in-memory `graph` was saved to (for `info`), if any.

    Raises:
        ModelLoadError: openvino is missing, or the graph cannot be read or compiled.
        ConfigError: a setting is out of range.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        graph="fp32",
        threads: int | None = None,
        hint: str = "LATENCY",
        precision: str | None = None,
        batch_size: int = 64,
        max_tokens: int | None = 1024,
        model_path: str | os.PathLike | None = None,
    ) -> None:
        if hint not in PERFORMANCE_HINTS:
            raise ConfigError(f"hint={hint!r}: use one of {', '.join(PERFORMANCE_HINTS)}")
        if precision not in PRECISIONS:
            raise ConfigError(f"precision={precision!r}: use None (the CPU's choice), f32 or bf16")
        if threads is not None and threads < 1:
            raise ConfigError(f"threads={threads!r}: use 1 or more (or None for every core)")
        if batch_size < 1 or (max_tokens is not None and max_tokens < 1):
            raise ConfigError(f"batch_size={batch_size!r}, max_tokens={max_tokens!r}: use 1 or more")
        ov = _openvino()
        self.model_dir = Path(str(model_dir))
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        core = ov.Core()
        if isinstance(graph, ov.Model):
            model, self.model_path = graph, Path(model_path) if model_path else None
        else:
            self.model_path = resolve_graph(self.model_dir, graph)
            try:
                model = core.read_model(str(self.model_path))
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                raise ModelLoadError(f"{self.model_path}: OpenVINO could not read it ({first})") from exc
        properties = {"PERFORMANCE_HINT": hint}
        if threads:
            properties["INFERENCE_NUM_THREADS"] = threads
        if precision:
            properties["INFERENCE_PRECISION_HINT"] = precision
        try:
            self.compiled = core.compile_model(model, "CPU", properties)
        except RuntimeError as exc:
            raise ModelLoadError(f"{self.model_path or 'the model'}: OpenVINO could not compile it ({exc})") from exc
        self._request = self.compiled.create_infer_request()
        self._input_names = [port.get_any_name() for port in self.compiled.inputs]
        if "input_ids" not in self._input_names or set(self._input_names) - {"input_ids", "attention_mask"}:
            raise ModelLoadError(
                f"{self.model_path}: unexpected inputs {self._input_names} (expected input_ids and attention_mask); "
                "re-create the folder with `imdb-deploy export`"
            )
        self.tokenizer = load_tokenizer(self.model_dir)
        self.settings = load_settings(self.model_dir, self.tokenizer)
        self.label_names = tuple(self.settings.label_names)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.info = {
            "file": str(self.model_path) if self.model_path else None,
            "model_bytes": graph_bytes(self.model_path) if self.model_path and self.model_path.is_file() else None,
            "openvino": ov.__version__,
            "input_shapes": {port.get_any_name(): str(port.get_partial_shape()) for port in self.compiled.inputs},
            **self.properties(),
        }

    def properties(self) -> dict:
        """What the CPU plugin chose: inference precision, threads, streams, hint, execution devices."""
        get = self.compiled.get_property
        return {
            "inference_precision": str(get("INFERENCE_PRECISION_HINT").get_type_name()),
            "threads": int(get("INFERENCE_NUM_THREADS")),
            "streams": int(get("NUM_STREAMS")),
            "performance_hint": str(get("PERFORMANCE_HINT")).rpartition(".")[2],
            "execution_devices": list(get("EXECUTION_DEVICES")),
        }

    def run_batch(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits for one batch of token id lists (unpadded), padded to its longest (tokenization.pad)."""
        feed = pad(batch, self.pad_id)
        result = self._request.infer({name: feed[name] for name in self._input_names})
        return np.array(result[self.compiled.outputs[0]], dtype=np.float32)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, cut exactly as in training (the folder's tokenization settings)."""
        return encode(self.tokenizer, list(texts), self.settings)

    def logits_from_ids(self, encoded: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits in input order, from Predictor's length-sorted, token-capped batches."""
        out = np.empty((len(encoded), len(self.label_names)), dtype=np.float32)
        lengths = [len(ids) for ids in encoded]
        for batch in length_sorted_batches(lengths, self.batch_size, self.max_tokens):
            out[batch] = self.run_batch([encoded[i] for i in batch])
        return out

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw logits, shape (len(texts), num_labels), float32, in input order."""
        return self.logits_from_ids(self.encode(texts))


def quantize_static(
    model_dir: str | os.PathLike,
    calibration_texts: Sequence[str],
    output: str | os.PathLike | None = None,
    source: str = "fp32",
    calibration_source: str = "",
    progress: bool = True,
):
    """nncf static INT8 of an exported graph, calibrated on the given (training) reviews.

    Each calibration review is one unpadded call (shape 1 x its length), so padding never enters the scales.

    Args:
        model_dir: folder written by `imdb-deploy export`.
        calibration_texts: the reviews to calibrate on; take them from the training split, never the test split.
        output: where to save the IR (.xml, with its .bin beside it), written completely or not at all; None
            keeps it in memory only.
        source: the ONNX variant to quantize, one of ONNX_SOURCES.
        calibration_source: where the reviews came from, for the record.
        progress: show nncf's progress bars (on stderr); False discards them.

    Returns:
        (model, record): the quantized `openvino.Model`, and what was done (source graph, calibration size and
        source, nncf and openvino versions, file and bytes when saved).

    Raises:
        ModelLoadError: openvino or nncf is missing, or the graph cannot be read.
        ConfigError: no calibration reviews, or an unknown source.
    """
    if source not in ONNX_SOURCES:
        raise ConfigError(f"source={source!r}: use one of {', '.join(ONNX_SOURCES)}")
    if not calibration_texts:
        raise ConfigError("calibration_texts is empty: give training reviews to calibrate the INT8 scales on")
    ov = _openvino()
    try:
        import nncf
    except ImportError as exc:
        raise ModelLoadError(f"nncf is not installed: {_INSTALL_HINT}") from exc
    folder = Path(str(model_dir))
    path = resolve_graph(folder, source)
    tokenizer = load_tokenizer(folder)
    settings = load_settings(folder, tokenizer)
    items = []
    for ids in encode(tokenizer, list(calibration_texts), settings):
        batch = pad([ids], tokenizer.pad_token_id or 0)
        items.append({name: batch[name] for name in ("input_ids", "attention_mask")})
    model = ov.Core().read_model(str(path))
    nncf.set_log_level(logging.ERROR)
    # nncf draws rich progress bars on stdout, which is for data: send them to stderr.
    with redirect_stdout(sys.stderr if progress else io.StringIO()):
        quantized = nncf.quantize(
            model, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(items)
        )
    record = {
        "method": "nncf.quantize, ModelType.TRANSFORMER, static activation scales",
        "source": path.name,
        "calibration_samples": len(items),
        "calibration_source": calibration_source,
        "nncf": nncf.__version__,
        "openvino": ov.__version__,
    }
    if output is not None:
        save_ir(quantized, output)
        record.update(file=str(output), bytes=graph_bytes(output))
    return quantized, record


def save_ir(model, output: str | os.PathLike) -> Path:
    """Save an `openvino.Model` as IR (.xml, its .bin beside it, weights as they are), completely or not at all."""
    ov = _openvino()
    output = Path(output)
    # The .bin is renamed into place first, the .xml (what a reader looks for) last.
    with atomic_file(output) as xml_tmp, atomic_file(output.with_suffix(".bin")) as bin_tmp:
        scratch = xml_tmp.with_name(xml_tmp.name + ".xml")
        ov.save_model(model, str(scratch), compress_to_fp16=False)
        os.replace(scratch.with_suffix(".bin"), bin_tmp)
        os.replace(scratch, xml_tmp)
    return output


class PerReviewRunner:
    """An OpenVINO IR scoring one review per infer request, `streams` requests in flight.

    The model is compiled with PERFORMANCE_HINT THROUGHPUT and NUM_STREAMS = INFERENCE_NUM_THREADS = `streams`:
    one thread per stream, so each review runs on one core with the same kernels whichever stream takes it, and
    `streams` reviews run at once (the same reasoning as predict's per-review onnxruntime path). Thread-safe:
    several callers may score at once (serve does); each gets its own rows back, in order.

    Args:
        path: the .xml file.
        streams: reviews in flight; None: the physical cores.
        precision: INFERENCE_PRECISION_HINT, one of PRECISIONS (None: the CPU plugin's choice).

    Raises:
        ModelLoadError: openvino is missing, or the IR cannot be read or compiled.
        ConfigError: a setting is out of range.
    """

    def __init__(self, path: str | os.PathLike, streams: int | None = None, precision: str | None = None) -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"precision={precision!r}: use None (the CPU's choice), f32 or bf16")
        if streams is not None and streams < 1:
            raise ConfigError(f"threads={streams!r}: use 1 or more (or None for all physical cores)")
        ov = _openvino()
        self.path = Path(path)
        self.streams = streams or physical_cores()
        core = ov.Core()
        properties = {
            "PERFORMANCE_HINT": "THROUGHPUT",
            "NUM_STREAMS": self.streams,
            "INFERENCE_NUM_THREADS": self.streams,
        }
        if precision:
            properties["INFERENCE_PRECISION_HINT"] = precision
        try:
            self.compiled = core.compile_model(core.read_model(str(self.path)), "CPU", properties)
        except RuntimeError as exc:
            lines = str(exc).strip().splitlines()
            raise ModelLoadError(
                f"{self.path}: OpenVINO could not read or compile it ({lines[-1] if lines else type(exc).__name__}); "
                "re-create the folder with `imdb-deploy export`"
            ) from exc
        self.input_names = [port.get_any_name() for port in self.compiled.inputs]
        if "input_ids" not in self.input_names or set(self.input_names) - {"input_ids", "attention_mask"}:
            raise ModelLoadError(
                f"{self.path}: unexpected inputs {self.input_names} (expected input_ids and attention_mask); "
                "re-create the folder with `imdb-deploy export`"
            )
        self.outputs = int(self.compiled.outputs[0].get_partial_shape()[-1].get_length())
        self.precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())
        self.openvino_version = ov.__version__
        self._queue = ov.AsyncInferQueue(self.compiled, self.streams)
        self._queue.set_callback(self._finished)
        self._submit = threading.Lock()

    @staticmethod
    def _finished(request, userdata) -> None:
        out, row, call = userdata
        try:
            out[row] = request.get_output_tensor(0).data[0]
        except Exception as exc:  # reported to the caller, who waits for every row
            call.error = exc
        call.row_done()

    def run(self, reviews: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits of each review (token ids, unpadded), in order: one infer request per review.

        Raises:
            ModelLoadError: OpenVINO failed on a review.
        """
        out = np.empty((len(reviews), self.outputs), dtype=np.float32)
        if not reviews:
            return out
        call = _Call(len(reviews))
        with self._submit:  # one caller hands its reviews to the queue at a time; they run in parallel
            for row, ids in enumerate(reviews):
                tokens = np.asarray([ids], dtype=np.int64)
                feed = {"input_ids": tokens}
                if "attention_mask" in self.input_names:
                    feed["attention_mask"] = np.ones_like(tokens)
                self._queue.start_async(feed, (out, row, call))
        call.wait()
        if call.error is not None:
            raise ModelLoadError(f"{self.path}: OpenVINO failed on a review ({call.error})") from call.error
        return out

    def describe(self) -> dict:
        """What the CPU plugin compiled: precision, streams, threads, OpenVINO version."""
        return {
            "runtime": "openvino",
            "inference_precision": self.precision,
            "streams": int(self.compiled.get_property("NUM_STREAMS")),
            "threads": int(self.compiled.get_property("INFERENCE_NUM_THREADS")),
            "openvino": self.openvino_version,
        }


class _Call:
    """The rows one `PerReviewRunner.run` still waits for."""

    def __init__(self, rows: int) -> None:
        self.pending = rows
        self.error: Exception | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()

    def row_done(self) -> None:
        with self._lock:
            self.pending -= 1
            if self.pending == 0:
                self._done.set()

    def wait(self) -> None:
        self._done.wait()


def write_variants(
    folder: str | os.PathLike,
    calibration,
    log=None,
    progress: bool = True,
) -> dict:
    """Write the openvino-fp32 and openvino-int8 IRs into an exported folder (export calls it before the gate).

    Args:
        folder: the folder being exported (model.onnx, tokenizer and train_config.json already in it).
        calibration: a data.ReviewSplit of TRAINING reviews; nncf calibrates the INT8 scales on them.
        log: receives progress lines for people.
        progress: show nncf's progress bars (on stderr).

    Returns:
        The record for export_report.json: per IR its file and bytes; for INT8 the calibration (source,
        count and the ids of the reviews).

    Raises:
        ModelLoadError: the extra is missing, or OpenVINO cannot read model.onnx.
    """
    ov = _openvino()
    log = log or (lambda message: None)
    folder = Path(str(folder))
    source = resolve_graph(folder, "fp32")
    log(f"converting {source.name} to OpenVINO IR ({FP32_IR}) ...")
    try:
        model = ov.Core().read_model(str(source))
    except RuntimeError as exc:
        raise ModelLoadError(f"{source}: OpenVINO could not read it ({str(exc).strip()[-200:]})") from exc
    save_ir(model, folder / FP32_IR)
    log(f"quantizing {source.name} to static INT8 with nncf on {len(calibration)} training reviews ...")
    source_name = f"{calibration.source} [{calibration.name}]"
    _, record = quantize_static(
        folder, calibration.texts, folder / INT8_IR, calibration_source=source_name, progress=progress
    )
    record.update(file=INT8_IR, calibration_ids=list(calibration.ids))
    return {
        "openvino-fp32": {"file": FP32_IR, "bytes": graph_bytes(folder / FP32_IR), "source": source.name},
        "openvino-int8": record,
    }
