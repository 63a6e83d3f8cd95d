"""Fast predictions through onnxruntime: the `Predictor` class and `imdb-deploy predict`.

Speed comes from padding little: the reviews of a chunk are tokenized together, sorted by length and
grouped so that a batch pads only to its own longest review and holds at most `max_tokens` padded tokens
(short reviews travel in big batches, long ones in small); results are put back in input order.

A variant whose answers would depend on the batch (dynamic INT8, which picks its activation scales per
call) runs one review per onnxruntime call instead (artifacts.VARIANT_BATCHING): the same review gets the
same probabilities whatever else is scored with it. `Predictor.batching` says which a variant does.

The openvino-* variants run on OpenVINO instead (openvino_runtime.PerReviewRunner, one review per infer
request), and "auto" runs the default that export chose by measurement on this CPU (runtime_choice).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from imdb_deploy.errors import ConfigError, InputError, ModelLoadError
from imdb_deploy.machine import physical_cores
from imdb_deploy.metrics import softmax
from imdb_deploy.reviews import is_blank, review_problem
from imdb_deploy.runtimes.config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_TOKENS,
    OPENVINO_BATCHING,
    OPENVINO_VARIANTS,
    VARIANT_BATCHING,
)
from imdb_deploy.runtimes.folder import ExportFolder, open_folder
from imdb_deploy.runtimes.onnx import open_onnx_session
from imdb_deploy.tokenization import encode, length_sorted_batches, pad


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one review.

    Attributes:
        label: name of the most probable class ("negative" or "positive" for IMDb).
        score: probability of that class.
        probabilities: probability of every class, by name.
    """

    label: str
    score: float
    probabilities: dict[str, float]


class Predictor:
    """An exported ONNX model, its tokenizer and tokenization settings, ready to score reviews.

    Args:
        model_dir: folder written by `imdb-deploy export` (ONNX files, tokenizer, train_config.json), or that
            folder already opened (model_folder.ExportFolder: several Predictors then share one tokenizer).
        variant: "auto" (on the CPU the folder's measured default_variant, else INT8 when present, one review
            per call: batch-invariant), or one of VARIANTS ("int8-batched" is faster on short reviews but
            batch-dependent; "openvino-int8" and "openvino-fp32" run on OpenVINO, one review per request).
        provider: "cpu", or "cuda" with onnxruntime-gpu installed.
        threads: cores to use; None uses all physical cores. A batched variant gives them to onnxruntime's
            intra-op pool; a per-review variant (the default INT8) runs that many reviews at once, each on
            one core: one review is too small a call to split well (on 2 cores, 1.16x at distilbert-base/512
            and 1.17x at MiniLM/256 over one 2-thread call at a time, research/invariance_speed.py), and a
            review's answer is still computed the same way whatever runs beside it.
        batch_size: most reviews in one onnxruntime call (variants that run one review per call ignore it).
        max_tokens: most padded tokens (reviews x longest review) in one call; None for no cap.
        allow_unverified: load files that differ from the checksums export_report.json recorded (or a
            report that cannot be read) instead of refusing them; `files` then says so.
        precision: openvino-* variants: INFERENCE_PRECISION_HINT, None for the CPU plugin's choice (bf16 on
            CPUs with AVX512-BF16 or AMX, f32 elsewhere), "f32" to force full precision; onnxruntime ignores it.

    Attributes:
        folder: the opened model_folder.ExportFolder.
        files: the model_folder.FileCheck of the files loaded: `files.verified` is True only when each is the
            file the export recorded (status "unrecorded" for a folder exported before checksums were).
        batching: the variant's artifacts.VariantBatching: one review per call or batched, and whether it
            is batch-invariant (what `verify` checks and a server shows in /info).

    Raises:
        ModelLoadError: the folder, the variant, onnxruntime or the CUDA provider is missing; a file changed
            since export (without allow_unverified).
        ConfigError: batch_size, max_tokens or threads is out of range.

    Example:
        >>> Predictor("runs/minilm-2k-onnx").predict(["A wonderful film."])[0].label
        'positive'
    """

    def __init__(
        self,
        model_dir: str | os.PathLike | ExportFolder,
        variant: str = "auto",
        provider: str = "cpu",
        threads: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
        io_binding: bool | None = None,
        allow_unverified: bool = False,
        precision: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r}: use 1 or more")
        if max_tokens is not None and max_tokens < 1:
            raise ConfigError(f"max_tokens={max_tokens!r}: use 1 or more (or None for no cap)")
        if threads is not None and threads < 1:
            raise ConfigError(f"threads={threads!r}: use 1 or more (or None for all physical cores)")
        self.folder = open_folder(model_dir)
        self.model_dir = self.folder.path
        self.variant, self.model_path = self.folder.resolve_variant(variant, gpu=provider == "cuda")
        self.files = self.folder.check_files(self.model_path, allow_unverified)
        self.batching = OPENVINO_BATCHING.get(self.variant) or VARIANT_BATCHING[self.variant]
        self.provider = provider
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.io_binding = provider == "cuda" if io_binding is None else io_binding
        # Per-review variants on the CPU: `workers` single-threaded calls at once (see `threads` above).
        self.workers = 1
        if self.batching.per_review and provider == "cpu" and not self.io_binding:
            self.workers = threads or physical_cores()
        self._openvino = None
        if self.variant in OPENVINO_VARIANTS:
            from imdb_deploy.runtimes.openvino import PerReviewRunner  # the optional openvino extra

            self._openvino = PerReviewRunner(self.model_path, self.workers, precision)
            self.session = None
            self.runtime = self._openvino.describe()
        else:
            session_threads = 1 if self.workers > 1 else threads
            self.session = open_onnx_session(self.model_path, provider=provider, threads=session_threads)
            self.runtime = {"runtime": "onnxruntime"}
        self._pool = None
        self.tokenizer = self.folder.tokenizer
        self.settings = self.folder.settings
        self.label_names = tuple(self.settings.label_names)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        if self._openvino is not None:
            self._input_names, self._output_name = self._openvino.input_names, "logits"
            self._check_width(self._openvino.outputs)
            return
        self._input_names = [node.name for node in self.session.get_inputs()]
        unknown = set(self._input_names) - {"input_ids", "attention_mask", "token_type_ids"}
        if "input_ids" not in self._input_names or unknown:
            raise ModelLoadError(
                f"{self.model_path}: unexpected ONNX inputs {self._input_names} (expected input_ids and "
                "attention_mask); re-create the folder with `imdb-deploy export`"
            )
        outputs = self.session.get_outputs()
        self._output_name = "logits" if any(out.name == "logits" for out in outputs) else outputs[0].name
        self._check_width(next(out for out in outputs if out.name == self._output_name).shape[-1])
        # One flat buffer per input, reshaped to (batch, longest) for each call: no allocation per batch.
        self._buffer_rows = batch_size
        self._buffers = self._allocate(batch_size)

    def _check_width(self, width) -> None:
        if isinstance(width, int) and width != len(self.label_names):
            raise ModelLoadError(
                f"{self.model_path}: the model has {width} outputs but train_config.json names "
                f"{len(self.label_names)} labels ({', '.join(self.label_names)}); re-export the trained folder"
            )

    def __repr__(self) -> str:
        return (
            f"Predictor({str(self.model_dir)!r}, variant={self.variant!r}, provider={self.provider!r}, "
            f"batch_size={self.batch_size}, max_tokens={self.max_tokens}, io_binding={self.io_binding})"
        )

    def _allocate(self, rows: int) -> dict[str, np.ndarray]:
        size = rows * self.settings.max_length
        return {name: np.empty(size, dtype=np.int64) for name in ("input_ids", "attention_mask")}

    def _fill(self, batch: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        """Pad a batch into the preallocated buffers (tokenization.pad), with the inputs the graph takes."""
        if len(batch) > self._buffer_rows:  # only when max_tokens allows more rows than batch_size
            self._buffer_rows = len(batch)
            self._buffers = self._allocate(len(batch))
        feed = pad(batch, self.pad_id, self._buffers)
        if "token_type_ids" in self._input_names:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        return {name: feed[name] for name in self._input_names}

    def run_batch(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits for one batch of token id lists (unpadded), in order; the one place onnxruntime runs.

        A per-review variant runs each review in a call of its own here too, so no entry point can make
        its answers depend on the batch.
        """
        if self.batching.per_review:
            return self._run_reviews(batch)
        feed = self._fill(batch)
        if not self.io_binding:
            return self.session.run([self._output_name], feed)[0]
        from onnxruntime import OrtValue

        device = "cuda" if self.provider == "cuda" else "cpu"
        binding = self.session.io_binding()
        for name, array in feed.items():
            binding.bind_ortvalue_input(name, OrtValue.ortvalue_from_numpy(array, device, 0))
        binding.bind_output(self._output_name, device)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def _run_reviews(self, reviews: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits of a per-review variant: each review alone in its own call, `workers` calls at once.

        Thread-safe: each call pads into arrays of its own (not the shared buffers), so several threads may
        score at once (serve runs `workers` batches in flight on one Predictor).
        """
        if self._openvino is not None:  # OpenVINO's own queue keeps `workers` requests in flight
            return self._openvino.run(reviews)
        if self.workers == 1 or len(reviews) == 1:
            return np.concatenate([self._run_review(ids) for ids in reviews])
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="imdb-deploy-review")
        return np.concatenate(list(self._pool.map(self._run_review, reviews)))

    def _run_review(self, ids: Sequence[int]) -> np.ndarray:
        feed = pad([ids], self.pad_id)
        if "token_type_ids" in self._input_names:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        return self.session.run([self._output_name], {name: feed[name] for name in self._input_names})[0]

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, cut exactly as in training (tokenization.encode with the folder's settings)."""
        texts = _check_texts(texts)
        return encode(self.tokenizer, texts, self.settings)

    def plan(self, lengths: Sequence[int]) -> list[list[int]]:
        """The onnxruntime calls for reviews of these token counts: lists of indices, each index once.

        One review per call for a per-review variant, else length-sorted batches capped by batch_size
        and max_tokens (tokenization.length_sorted_batches).
        """
        if self.batching.per_review:
            return [[i] for i in range(len(lengths))]
        return length_sorted_batches(lengths, self.batch_size, self.max_tokens)

    def logits_from_ids(self, encoded: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits for already tokenized reviews, in input order (run as `plan` groups them, then restored)."""
        out = np.empty((len(encoded), len(self.label_names)), dtype=np.float32)
        if self.batching.per_review and encoded:
            out[:] = self._run_reviews(encoded)
            return out
        for batch in self.plan([len(ids) for ids in encoded]):
            out[batch] = self.run_batch([encoded[i] for i in batch])
        return out

    def describe(self) -> dict:
        """What this predictor runs, for reports and a server's /info: variant, file, batching, limits."""
        return {
            "variant": self.variant,
            "file": self.model_path.name,
            "provider": self.provider,
            "workers": self.workers,
            **self.batching.to_dict(),
            "batch_size": None if self.batching.per_review else self.batch_size,
            "max_tokens": None if self.batching.per_review else self.max_tokens,
            "max_length": self.settings.max_length,
            **self.runtime,
        }

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw logits, shape (len(texts), num_labels), float32, in input order.

        Raises:
            InputError: `texts` is a single string or holds a non-string.
        """
        return self.logits_from_ids(self.encode(texts))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, shape (len(texts), num_labels), float32, in input order.

        Raises:
            InputError: `texts` is a single string or holds a non-string.
        """
        return softmax(self.logits(texts)).astype(np.float32)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """One Prediction (label, its score, all probabilities) per text, in input order.

        Raises:
            InputError: `texts` is a single string or holds a non-string.
        """
        return self.to_predictions(self.predict_proba(texts))

    def to_predictions(self, probabilities: np.ndarray) -> list[Prediction]:
        """Predictions from rows of class probabilities."""
        best = probabilities.argmax(axis=1)
        return [
            Prediction(
                label=self.label_names[k],
                score=float(row[k]),
                probabilities={name: float(p) for name, p in zip(self.label_names, row, strict=True)},
            )
            for row, k in zip(probabilities, best, strict=True)
        ]


def _check_texts(texts) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise InputError("texts: pass a list of reviews, e.g. predict([text]), not a single string")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"texts[{i}]: expected a string, got {type(text).__name__}")
        problem = None if is_blank(text) else review_problem(text)  # blank texts are scored as they are
        if problem:
            raise InputError(f"texts[{i}]: {problem[0]}; {problem[1]}")
    return texts
