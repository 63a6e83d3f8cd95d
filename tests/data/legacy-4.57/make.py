"""How the folders beside this file were made: run once with imdb-deploy 0.1.0 on transformers 4.57.6 and
optimum-onnx 0.1.0 (the stack before transformers 5; `bash scripts/setup.sh --optimum` builds one), from the
repository root of that version:

    python tests/data/legacy-4.57/make.py tests/data/legacy-4.57

It trains the tests' tiny random DistilBERT on the toy task (tests/conftest.py), exports it with optimum
(fp32, fused, INT8) through the parity gate, and records what that stack answered for fixed reviews:
expected.json holds PyTorch's and every ONNX variant's probabilities (float32, as lists), which
tests/test_legacy.py compares with what the current code answers on the same files. Its `input_ids` (the
old stack's token ids of the texts, unpadded) were added later, by the same stack (imdb-deploy at 8e5879f
under transformers 4.57.6 / tokenizers 0.22.2): `encode(load_tokenizer(onnx), texts, load_settings(onnx))`.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

root = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(root), str(root / "tests")]

import pandas as pd  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from conftest import build_tiny_base_model, toy_reviews  # noqa: E402

from imdb_deploy.export.config import ExportConfig  # noqa: E402
from imdb_deploy.export.stage import export  # noqa: E402
from imdb_deploy.runtimes.folder import load_tokenizer, load_torch_classifier  # noqa: E402
from imdb_deploy.runtimes.onnx import onnx_variants  # noqa: E402
from imdb_deploy.runtimes.predictor import Predictor  # noqa: E402
from imdb_deploy.tokenization import encode, pad  # noqa: E402
from imdb_deploy.training.config import TrainConfig  # noqa: E402
from imdb_deploy.training.train import train  # noqa: E402

out = Path(sys.argv[1])
work = Path(tempfile.mkdtemp())
build_tiny_base_model(work / "base")
data = work / "data"
data.mkdir()
for split, n, seed in (("train", 400, 1), ("test", 100, 2)):
    texts, labels = toy_reviews(n, seed=seed)
    pd.DataFrame({"text": texts, "label": labels}).to_parquet(data / f"{split}.parquet")
config = TrainConfig(
    model=str(work / "base"),
    data=str(data),
    output_dir=str(work / "model"),
    epochs=3,
    batch_size=16,
    lr=1e-2,
    max_length=48,
    val_size=0.1,
    seed=7,
    warmup_ratio=0.0,
)
model_dir = train(config, progress=False)
export(model_dir, work / "onnx", ExportConfig(quantize=True, data=str(data), verify_samples=None))
for name in ("model", "onnx"):
    shutil.rmtree(out / name, ignore_errors=True)
    shutil.copytree(work / name, out / name, ignore=shutil.ignore_patterns("checkpoints", "run_config.json"))

texts, _ = toy_reviews(40, seed=11, max_words=60)
model = load_torch_classifier(out / "model")
tokenizer = load_tokenizer(out / "model")
from imdb_deploy.folders import load_settings  # noqa: E402

batch = pad(encode(tokenizer, texts, load_settings(out / "model", tokenizer)), tokenizer.pad_token_id)
with torch.inference_mode():
    logits = model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits
expected = {
    "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
    "texts": texts,
    "torch": torch.softmax(logits, -1).tolist(),
    "onnx": {
        variant: Predictor(out / "onnx", variant=variant, threads=1).predict_proba(texts).tolist()
        for variant in onnx_variants(out / "onnx")
    },
}
(out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
print(f"wrote {out}")
