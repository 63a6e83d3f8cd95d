"""Fast predictions through onnxruntime: the `Predictor` class and `imdb-deploy predict`.

Speed comes from padding little: the reviews of a chunk are tokenized together, sorted by length and
grouped so that a batch pads only to its own longest review and holds at most `max_tokens` padded tokens
(short reviews travel in big batches, long ones in small); results are put back in input order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imdb_deploy.artifacts import load_settings, load_tokenizer, open_onnx_session, resolve_onnx_variant
from imdb_deploy.errors import ConfigError, InputError, ModelLoadError
from imdb_deploy.tokenization import encode, length_sorted_batches

# Most reviews in one onnxruntime call. Past ~64 short reviews a CPU gains nothing from bigger batches.
DEFAULT_BATCH_SIZE = 64
# Most padded tokens (batch x longest) in one call: 16 full 512-token reviews, or 64 of up to 128 tokens.
DEFAULT_MAX_TOKENS = 8192


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
        model_dir: folder written by `imdb-deploy export` (ONNX files, tokenizer, train_config.json).
        variant: "auto" (INT8 on CPU when present), or one of artifacts.ONNX_VARIANTS.
        provider: "cpu", or "cuda" with onnxruntime-gpu installed.
        threads: onnxruntime intra-op threads; None uses all physical cores.
        batch_size: most reviews in one onnxruntime call.
        max_tokens: most padded tokens (reviews x longest review) in one call; None for no cap.

    Raises:
        ModelLoadError: the folder, the variant, onnxruntime or the CUDA provider is missing.
        ConfigError: batch_size, max_tokens or threads is out of range.

    Example:
        >>> Predictor("runs/minilm-2k-onnx").predict(["A wonderful film."])[0].label
        'positive'
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        variant: str = "auto",
        provider: str = "cpu",
        threads: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r}: use 1 or more")
        if max_tokens is not None and max_tokens < 1:
            raise ConfigError(f"max_tokens={max_tokens!r}: use 1 or more (or None for no cap)")
        if threads is not None and threads < 1:
            raise ConfigError(f"threads={threads!r}: use 1 or more (or None for all physical cores)")
        self.model_dir = Path(str(model_dir))
        self.variant, self.model_path = resolve_onnx_variant(self.model_dir, variant, gpu=provider == "cuda")
        self.provider = provider
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.session = open_onnx_session(self.model_path, provider=provider, threads=threads)
        self.tokenizer = load_tokenizer(self.model_dir)
        self.settings = load_settings(self.model_dir, self.tokenizer)
        self.label_names = tuple(self.settings.label_names)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self._input_names = [node.name for node in self.session.get_inputs()]
        unknown = set(self._input_names) - {"input_ids", "attention_mask", "token_type_ids"}
        if "input_ids" not in self._input_names or unknown:
            raise ModelLoadError(
                f"{self.model_path}: unexpected ONNX inputs {self._input_names} (expected input_ids and "
                "attention_mask); re-create the folder with `imdb-deploy export`"
            )
        outputs = self.session.get_outputs()
        self._output_name = "logits" if any(out.name == "logits" for out in outputs) else outputs[0].name
        width = next(out for out in outputs if out.name == self._output_name).shape[-1]
        if isinstance(width, int) and width != len(self.label_names):
            raise ModelLoadError(
                f"{self.model_path}: the model has {width} outputs but train_config.json names "
                f"{len(self.label_names)} labels ({', '.join(self.label_names)}); re-export the trained folder"
            )
        # One flat buffer per input, reshaped to (batch, longest) for each call: no allocation per batch.
        self._buffer_rows = batch_size
        self._buffers = self._allocate(batch_size)

    def __repr__(self) -> str:
        return (
            f"Predictor({str(self.model_dir)!r}, variant={self.variant!r}, provider={self.provider!r}, "
            f"batch_size={self.batch_size}, max_tokens={self.max_tokens})"
        )

    def _allocate(self, rows: int) -> dict[str, np.ndarray]:
        size = rows * self.settings.max_length
        return {name: np.empty(size, dtype=np.int64) for name in ("input_ids", "attention_mask")}

    def _fill(self, batch: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        """Pad a batch into the preallocated buffers; same arrays as tokenization.pad."""
        width = max(len(ids) for ids in batch)
        if len(batch) > self._buffer_rows:  # only when max_tokens allows more rows than batch_size
            self._buffer_rows = len(batch)
            self._buffers = self._allocate(len(batch))
        n = len(batch) * width
        input_ids = self._buffers["input_ids"][:n].reshape(len(batch), width)
        mask = self._buffers["attention_mask"][:n].reshape(len(batch), width)
        input_ids.fill(self.pad_id)
        mask.fill(0)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        return {name: feed[name] for name in self._input_names}

    def run_batch(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits for one batch of token id lists (unpadded); the one place onnxruntime runs.

        A CUDA I/O-binding path would replace this method's body and keep its contract.
        """
        return self.session.run([self._output_name], self._fill(batch))[0]

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, cut exactly as in training (tokenization.encode with the folder's settings)."""
        texts = _check_texts(texts)
        return encode(self.tokenizer, texts, self.settings)

    def logits_from_ids(self, encoded: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits for already tokenized reviews, in input order (batched by length, then restored)."""
        out = np.empty((len(encoded), len(self.label_names)), dtype=np.float32)
        lengths = [len(ids) for ids in encoded]
        for batch in length_sorted_batches(lengths, self.batch_size, self.max_tokens):
            out[batch] = self.run_batch([encoded[i] for i in batch])
        return out

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
        return softmax(self.logits(texts))

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


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, float32."""
    logits = logits.astype(np.float32, copy=False)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _check_texts(texts) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise InputError("texts: pass a list of reviews, e.g. predict([text]), not a single string")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"texts[{i}]: expected a string, got {type(text).__name__}")
    return texts
