"""The teacher's outputs for distill: computed once per set of reviews, by the fastest gated variant of the
teacher's export or by PyTorch, and cached with the checksums that make them valid.

A cache entry (`TEACHER-RUNTIME-SET.npz` in the cache folder) holds the logits and what they were computed from:
the sha256 of the teacher's weights, the runtime (PyTorch, or the export's variant and the sha256 of its graph),
the tokenization settings and the sha256 of the reviews' token ids. A later run (resumed, or another student of
the same teacher) takes the entry when all of them match; when any differs (the teacher was retrained, the
reviews changed) the entry is refused, said so, and computed again.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from imdb_deploy.errors import ConfigError, ModelLoadError
from imdb_deploy.fileio import atomic_file, sha256_file
from imdb_deploy.folders import EXPORT_REPORT, load_export_report, model_weights, user_cache_dir
from imdb_deploy.runtimes.predictor import Predictor
from imdb_deploy.runtimes.pytorch import torch_logits_from_ids
from imdb_deploy.tokenization import TokenizationSettings

CACHE_FOLDER = "teacher-outputs"
# Reviews scored per call of the teacher's runtime: a progress step, and the granularity of its ETA.
CHUNK = 512


def reviews_checksum(encoded: Sequence[Sequence[int]]) -> str:
    """sha256 of the token ids of a set of reviews, in order: what the teacher's outputs were computed from."""
    digest = hashlib.sha256()
    for ids in encoded:
        digest.update(np.asarray(ids, dtype=np.int64).tobytes())
        digest.update(b"\xff" * 8)  # a separator no token id can spell
    return digest.hexdigest()


class Teacher:
    """The teacher distill learns from, with the runtime that scores reviews for it.

    Args:
        config: training.config.DistillConfig (teacher, teacher_onnx, teacher_cache).
        model: the PyTorch teacher (used when no export is named).
        tokenizer: its tokenizer.
        settings: its tokenization settings.
        log: receives lines for people (cache hits, refusals, progress), or None.

    Raises:
        ModelLoadError: the export is not this teacher's (other tokenization or weights), was not gated, or
            cannot be opened.
    """

    def __init__(self, config, model, tokenizer, settings: TokenizationSettings, log: Callable | None = None):
        self.path = Path(config.teacher).expanduser()
        self.model, self.pad_id, self.settings = model, tokenizer.pad_token_id, settings
        self.layers = int(model.config.n_layers)
        self.log = log or (lambda message: None)
        self.progress = log is not None
        self.sha256 = sha256_file(model_weights(self.path))
        self.predictor = _gated_export(config.teacher_onnx, self.sha256, settings) if config.teacher_onnx else None
        self.cache = (
            Path(config.teacher_cache).expanduser() if config.teacher_cache else user_cache_dir() / CACHE_FOLDER
        )

    def describe(self) -> dict:
        """Who the teacher is and what scored the reviews for it (train_config.json and metrics.json record it)."""
        runtime = {"runtime": "pytorch"}
        if self.predictor is not None:
            runtime = {
                "runtime": self.predictor.runtime.get("runtime", "onnxruntime"),
                "variant": self.predictor.variant,
                "export": self.predictor.model_dir.name,
                "graph_sha256": sha256_file(self.predictor.model_path),
            }
        return {"name": self.path.name, "sha256": self.sha256, "layers": self.layers, **runtime}

    def logits(self, name: str, encoded: Sequence[Sequence[int]]) -> np.ndarray:
        """The teacher's logits for one set of reviews (`name`: "train", "unlabelled", "validation", "test"),
        from the cache when it holds this very teacher, runtime and reviews."""
        if not encoded:
            return np.zeros((0, len(self.settings.label_names)), dtype=np.float32)
        record = {**self.describe(), "settings": self.settings.to_dict(), "reviews_sha256": reviews_checksum(encoded)}
        key = hashlib.sha256(json.dumps([str(self.path.resolve()), record["runtime"], name]).encode()).hexdigest()
        path = self.cache / f"{key[:16]}-{name}.npz"
        cached = _load(path)
        if cached is not None:
            stored, logits = cached
            if stored == record and len(logits) == len(encoded):
                self.log(f"teacher outputs for {len(encoded):,} {name} reviews: reused from {path}")
                return logits
            changed = sorted(k for k in record if stored.get(k) != record[k])
            self.log(f"teacher outputs in {path} refused: made from another {', '.join(changed)}; computing again")
        logits = self._compute(name, encoded)
        with atomic_file(path) as tmp:
            buffer = io.BytesIO()
            np.savez(buffer, logits=logits, record=np.array(json.dumps(record)))
            tmp.write_bytes(buffer.getvalue())
        return logits

    def _compute(self, name: str, encoded: Sequence[Sequence[int]]) -> np.ndarray:
        runtime = f"{self.predictor.variant} (export)" if self.predictor is not None else "PyTorch"
        chunks = [encoded[i : i + CHUNK] for i in range(0, len(encoded), CHUNK)]
        out = []
        bar = tqdm(total=len(encoded), desc=f"teacher {name} ({runtime})", unit=" reviews", disable=not self.progress)
        with bar:
            for chunk in chunks:
                if self.predictor is not None:
                    out.append(self.predictor.logits_from_ids(list(chunk)))
                else:
                    out.append(torch_logits_from_ids(self.model, chunk, self.pad_id, batch_size=32))
                bar.update(len(chunk))
        return np.concatenate(out).astype(np.float32)


def _load(path: Path) -> tuple[dict, np.ndarray] | None:
    """A cache entry's record and logits, or None when it is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as entry:
            return json.loads(str(entry["record"])), entry["logits"].astype(np.float32)
    except (OSError, ValueError, KeyError):
        return None


def _gated_export(onnx_dir: str, teacher_sha256: str, settings: TokenizationSettings) -> Predictor:
    """A Predictor on the default variant of the teacher's export, after checking it is this teacher's, read the
    same way, and gated.

    Raises:
        ModelLoadError: the export is unverified, of another model, or tokenizes differently.
        ConfigError: the folder is not an export.
    """
    report = load_export_report(onnx_dir)
    if not report:
        raise ConfigError(f"--teacher-onnx {onnx_dir!r}: no {EXPORT_REPORT}; name the teacher's `imdb-deploy export`")
    if not report.get("verified"):
        raise ModelLoadError(
            f"--teacher-onnx {onnx_dir!r}: the export did not pass the parity gate, so its answers are not the "
            "teacher's; export it with the gate, or leave --teacher-onnx out to use the PyTorch teacher"
        )
    recorded = report.get("source_sha256")
    if recorded and recorded != teacher_sha256:
        raise ModelLoadError(
            f"--teacher-onnx {onnx_dir!r}: exported from other weights than the teacher's (sha256 differs); "
            "export the teacher again, or leave --teacher-onnx out"
        )
    predictor = Predictor(onnx_dir, variant="auto")
    if predictor.settings != settings:
        raise ModelLoadError(
            f"--teacher-onnx {onnx_dir!r}: reads reviews as {predictor.settings.to_dict()}, the teacher as "
            f"{settings.to_dict()}; export the teacher again"
        )
    return predictor
