"""distill on the tiny model: a 1-layer student of a trained 2-layer teacher learns the toy task, follows its
teacher more closely than the cut it starts from, reuses the teacher's cached outputs, resumes to the same
weights, and refuses bad input in one line with nothing written."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import Interrupted, toy_reviews

from imdb_deploy.cli import cli
from imdb_deploy.export.config import ExportConfig
from imdb_deploy.export.stage import export
from imdb_deploy.metrics import softmax
from imdb_deploy.runtimes.folder import load_tokenizer, load_torch_classifier
from imdb_deploy.runtimes.pytorch import torch_logits
from imdb_deploy.training.config import DistillConfig, TrainConfig
from imdb_deploy.training.distill import distill, spread_layers, student_from_teacher
from imdb_deploy.training.train import train


@pytest.fixture(scope="module")
def distill_data(tmp_path_factory):
    """The toy task with an unlabelled split beside train and test (label -1, as IMDb's own)."""
    folder = tmp_path_factory.mktemp("distill-data")
    for split, n, seed in (("train", 400, 1), ("test", 100, 2), ("unsupervised", 160, 3)):
        texts, labels = toy_reviews(n, seed=seed)
        labels = [-1] * n if split == "unsupervised" else labels
        pd.DataFrame({"text": texts, "label": labels}).to_parquet(folder / f"{split}.parquet")
    return folder


@pytest.fixture(scope="module")
def teacher_dir(tiny_model_dir, distill_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "model"
    config = TrainConfig(
        model=str(tiny_model_dir),
        data=str(distill_data),
        output_dir=str(out),
        epochs=3,
        batch_size=16,
        lr=1e-2,
        max_length=48,
        val_size=0.1,
        seed=7,
        warmup_ratio=0.0,
    )
    return train(config, progress=False)


def student_config(teacher_dir, out, tmp_path, **overrides) -> DistillConfig:
    options = dict(
        teacher=str(teacher_dir),
        output_dir=str(out),
        layers=1,
        epochs=3,
        batch_size=16,
        lr=3e-3,
        warmup_ratio=0.0,
        seed=7,
        teacher_cache=str(tmp_path / "cache"),
    )
    return DistillConfig(**{**options, **overrides})


def test_layers_are_spread_from_the_first():
    assert spread_layers(6, 3) == [0, 2, 4] and spread_layers(6, 2) == [0, 3] and spread_layers(2, 1) == [0]


def test_student_learns_the_task_and_follows_its_teacher_closer_than_the_cut_it_starts_from(
    teacher_dir, distill_data, tmp_path
):
    out = distill(student_config(teacher_dir, tmp_path / "student", tmp_path), progress=False)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9 and metrics["unlabelled_samples"] == 160
    assert metrics["layers"] == {"teacher": 2, "student": 1, "initialised_from": [0]}
    teacher = metrics["teacher"]
    assert teacher["runtime"] == "pytorch" and teacher["samples"] == 100 == metrics["test"]["samples"]
    assert teacher["accuracy_difference"] == pytest.approx(metrics["test"]["accuracy"] - teacher["accuracy"])

    # The student's probabilities sit closer to the teacher's than those of the cut it was made from.
    texts = pd.read_parquet(distill_data / "test.parquet")["text"].tolist()
    teacher_model = load_torch_classifier(teacher_dir)
    tokenizer = load_tokenizer(teacher_dir)
    settings_model = json.loads((teacher_dir / "train_config.json").read_text())
    from imdb_deploy.tokenization import TokenizationSettings

    settings = TokenizationSettings.from_dict(settings_model)
    target = softmax(torch_logits(teacher_model, tokenizer, texts, settings))
    before = softmax(torch_logits(student_from_teacher(teacher_model, 1).eval(), tokenizer, texts, settings))
    after = softmax(torch_logits(load_torch_classifier(out), tokenizer, texts, settings))
    assert np.abs(after - target).mean() < np.abs(before - target).mean()


def test_the_student_folder_is_a_normal_training_output(teacher_dir, distill_data, tmp_path):
    out = distill(student_config(teacher_dir, tmp_path / "student", tmp_path, epochs=1), progress=False)
    recorded = json.loads((out / "train_config.json").read_text())
    assert recorded["teacher"]["name"] == teacher_dir.name and len(recorded["teacher"]["sha256"]) == 64
    assert recorded["max_length"] == 48 and recorded["truncation"] == "head+tail"
    assert recorded["data_samples"]["unlabelled"] == 160 and recorded["base_model"] == teacher_dir.name
    assert json.loads((out / "config.json").read_text())["n_layers"] == 1
    assert "Distilled" in (out / "README.md").read_text() and not (out / "checkpoints").exists()
    report = export(out, tmp_path / "onnx", ExportConfig(quantize=True, data=str(distill_data), verify_samples=40))
    assert report.verified


def test_teacher_outputs_are_reused_and_refused_when_the_reviews_change(teacher_dir, distill_data, tmp_path, capsys):
    lines = []
    config = student_config(teacher_dir, tmp_path / "a", tmp_path, epochs=1)
    distill(config, progress=False, log=lines.append)
    assert not any("reused" in line for line in lines)
    lines.clear()
    distill(student_config(teacher_dir, tmp_path / "b", tmp_path, epochs=1), progress=False, log=lines.append)
    assert sum("reused" in line for line in lines) == 4  # train, unlabelled, validation, test
    lines.clear()
    texts, _ = toy_reviews(50, seed=11)
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    config = student_config(teacher_dir, tmp_path / "c", tmp_path, epochs=1, unlabelled=str(other))
    distill(config, progress=False, log=lines.append)
    assert any("refused: made from another reviews_sha256" in line for line in lines), lines
    assert sum("reused" in line for line in lines) == 3


def test_resume_reaches_the_same_weights(teacher_dir, tmp_path, monkeypatch):
    import imdb_deploy.training.distill as distill_module

    straight = distill(student_config(teacher_dir, tmp_path / "straight", tmp_path, epochs=2), progress=False)
    real = distill_module.distill_step
    calls = {"n": 0}

    def stopping(*args):
        step = real(*args)

        def run(*a, **k):
            calls["n"] += 1
            if calls["n"] == 20:
                raise Interrupted("stopped at step 20")
            return step(*a, **k)

        return run

    config = student_config(teacher_dir, tmp_path / "resumed", tmp_path, epochs=2, checkpoint_every=8)
    monkeypatch.setattr(distill_module, "distill_step", stopping)
    with pytest.raises(Interrupted):
        distill(config, progress=False)
    monkeypatch.setattr(distill_module, "distill_step", real)
    resumed = distill(config, resume=True, progress=False)
    a, b = load_torch_classifier(straight).state_dict(), load_torch_classifier(resumed).state_dict()
    assert all(np.allclose(a[k].numpy(), b[k].numpy(), atol=1e-6) for k in a)


def test_the_export_of_the_teacher_gives_the_soft_targets_when_it_is_gated(teacher_dir, distill_data, tmp_path):
    onnx = tmp_path / "teacher-onnx"
    export(teacher_dir, onnx, ExportConfig(quantize=True, data=str(distill_data), verify_samples=40))
    config = student_config(teacher_dir, tmp_path / "student", tmp_path, epochs=1, teacher_onnx=str(onnx))
    metrics = json.loads((distill(config, progress=False) / "metrics.json").read_text())
    assert metrics["teacher"]["runtime"] == "onnxruntime" and metrics["teacher"]["variant"] == "int8"
    ungated = tmp_path / "ungated"
    export(teacher_dir, ungated, ExportConfig(quantize=True, verify=False))
    result = run(["distill", teacher_dir, "-o", tmp_path / "s2", "--teacher-onnx", ungated, "-q"])
    assert result.exit_code == 1 and "did not pass the parity gate" in result.output
    assert not (tmp_path / "s2").exists()


def run(args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_bad_input_is_one_line_and_writes_nothing(tiny_model_dir, teacher_dir, tmp_path):
    cases = [
        ([tiny_model_dir, "-o", tmp_path / "s"], 1, "not a trained classifier (no train_config.json)"),
        ([teacher_dir, "-o", tmp_path / "s", "--layers", "2"], 1, "--layers 2: use fewer layers than the teacher's 2"),
        ([teacher_dir, "-o", teacher_dir / "student"], 1, "is inside the teacher folder"),
        ([teacher_dir, "-o", teacher_dir], 1, "is the teacher folder"),
        ([teacher_dir, "-o", tmp_path / "s", "--temperature", "0"], 1, "temperature=0.0: use a positive number"),
    ]
    no_text = tmp_path / "reviews.jsonl"
    no_text.write_text('{"review": "a fine film"}\n')
    cases.append(([teacher_dir, "-o", tmp_path / "s", "--unlabelled", no_text], 1, "field 'text' missing"))
    before = sorted(p.name for p in teacher_dir.iterdir())
    for args, code, message in cases:
        result = run(["distill", *args, "-q"])
        assert result.exit_code == code, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.output)
        assert not (tmp_path / "s").exists()
    assert sorted(p.name for p in teacher_dir.iterdir()) == before
