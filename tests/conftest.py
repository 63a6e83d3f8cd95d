"""Shared fixtures: a tiny random DistilBERT with a real WordPiece tokenizer, and a separable toy task.

Nothing here touches the network or large weights: the Hub is forced offline and HF_HOME is a temp folder.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
from pathlib import Path

_HF_HOME = tempfile.mkdtemp(prefix="imdb-deploy-hf-")
os.environ.update(
    HF_HUB_OFFLINE="1",
    TRANSFORMERS_OFFLINE="1",
    HF_DATASETS_OFFLINE="1",
    HF_HOME=_HF_HOME,
    HF_HUB_DISABLE_TELEMETRY="1",
    TOKENIZERS_PARALLELISM="false",
)

import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from imdb_deploy.cli import cli  # noqa: E402

POSITIVE_WORDS = ["good", "great", "excellent", "wonderful", "loved", "brilliant", "superb", "enjoyable"]
NEGATIVE_WORDS = ["bad", "awful", "terrible", "boring", "hated", "dull", "worst", "weak"]
FILLER_WORDS = ["the", "movie", "film", "plot", "actor", "was", "and", "it", "this", "a", "story", "scene"]
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def toy_reviews(n: int, seed: int = 0, min_words: int = 4, max_words: int = 40) -> tuple[list[str], list[int]]:
    """`n` reviews, half positive, whose label is decided by which sentiment words they contain."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        words = rng.choices(FILLER_WORDS, k=rng.randint(min_words, max_words))
        sentiment = POSITIVE_WORDS if label else NEGATIVE_WORDS
        for _ in range(rng.randint(1, 3)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(sentiment))
        texts.append(" ".join(words).capitalize() + ".")
        labels.append(label)
    return texts, labels


def build_tiny_base_model(folder) -> None:
    """Save a 2-layer, 32-dim random DistilBERT encoder and its WordPiece tokenizer into `folder`."""
    import torch
    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    words = POSITIVE_WORDS + NEGATIVE_WORDS + FILLER_WORDS + list(".,!?") + letters + ["##" + c for c in letters]
    vocab = list(dict.fromkeys(SPECIAL_TOKENS + words))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = DistilBertTokenizerFast.from_pretrained(folder, do_lower_case=True, model_max_length=512)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = DistilBertConfig(
        vocab_size=len(vocab), dim=32, hidden_dim=64, n_layers=2, n_heads=2, max_position_embeddings=512
    )
    DistilBertModel(config).save_pretrained(folder)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Folder of a tiny random DistilBERT base encoder (no classification head) with its tokenizer."""
    folder = tmp_path_factory.mktemp("tiny-distilbert")
    build_tiny_base_model(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory, tiny_model_dir):
    """A tiny sequence classifier folder laid out like `imdb-deploy train` output (untrained head).

    Holds weights, tokenizer and train_config.json (max_length 64, head+tail truncation).
    """
    import torch

    from imdb_deploy.folders import write_train_config
    from imdb_deploy.runtimes.folder import load_tokenizer, load_torch_classifier
    from imdb_deploy.tokenization import TokenizationSettings

    folder = tmp_path_factory.mktemp("tiny-classifier")
    torch.manual_seed(0)
    model = load_torch_classifier(tiny_model_dir)
    model.save_pretrained(folder)
    load_tokenizer(tiny_model_dir).save_pretrained(folder)
    settings = TokenizationSettings(max_length=64, truncation="head+tail")
    write_train_config(folder, settings, tiny_model_dir)
    return folder


@pytest.fixture(scope="session")
def toy_data_dir(tmp_path_factory):
    """A data folder with train.parquet and test.parquet of the toy task (400 / 100 reviews)."""
    import pandas as pd

    folder = tmp_path_factory.mktemp("toy-data")
    for split, n, seed in (("train", 400, 1), ("test", 100, 2)):
        texts, labels = toy_reviews(n, seed=seed)
        pd.DataFrame({"text": texts, "label": labels}).to_parquet(folder / f"{split}.parquet")
    return folder


@pytest.fixture(scope="session")
def tiny_onnx_dir(tmp_path_factory, tiny_classifier_dir):
    """`tiny_classifier_dir` exported by `imdb-deploy export --quantize`: model.onnx, model_optimized.onnx,
    model_quantized.onnx, tokenizer, config.json, train_config.json, export_report.json (parity not run).
    """
    from imdb_deploy.export.config import ExportConfig
    from imdb_deploy.export.stage import export

    # Beside the model, as export's default MODEL_DIR-onnx is: verify finds its source there by name and sha256.
    folder = tiny_classifier_dir.parent / f"{tiny_classifier_dir.name}-onnx"
    export(tiny_classifier_dir, folder, ExportConfig(quantize=True, verify=False))
    return folder


class Interrupted(Exception):
    """Stands for whatever stops a run midway (a kill, a lost node, an out-of-memory error)."""


def interrupt_at_step(monkeypatch, step: int) -> None:
    """Make train's `step`-th optimizer step raise Interrupted (one batch per step: no accumulation)."""
    import imdb_deploy.training.train as train_module

    calls = {"n": 0}
    real_step = train_module.training_step

    def step_or_stop(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == step:
            raise Interrupted(f"stopped at step {step}")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "training_step", step_or_stop)


def checkpointed_run(model_dir, data_dir, tmp_path, monkeypatch):
    """A tiny `train` stopped after its checkpoint at step 1: (its TrainConfig options, the checkpoint folder)."""
    from imdb_deploy.training.config import TrainConfig
    from imdb_deploy.training.train import train

    monkeypatch.chdir(tmp_path)
    options = dict(model=str(model_dir), data=str(data_dir), output_dir=str(tmp_path / "run"), epochs=1)
    options.update(max_train_samples=32, max_eval_samples=16, max_length=32, checkpoint_every=1, seed=3)
    with monkeypatch.context() as patch, pytest.raises(Interrupted):
        interrupt_at_step(patch, 2)  # stopped after the checkpoint at step 1
        train(TrainConfig(**options), progress=False)
    (checkpoint,) = (tmp_path / "run" / "checkpoints").glob("step-*")
    return options, checkpoint


# --- the CLI as a user runs it (the fault tests) ----------------------------------------------------------------

IMDB_DEPLOY = [sys.executable, "-m", "imdb_deploy"]


def run_cli(args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def one_line_error(result) -> str:
    """The single `Error: ...` line of a failed command (exit 1, no traceback, nothing else on stderr)."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path
