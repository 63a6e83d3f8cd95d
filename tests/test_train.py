import json
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import Interrupted, interrupt_at_step
from safetensors.torch import load_file

from imdb_deploy.cli import cli
from imdb_deploy.errors import ConfigError, DataError, HubUnreachableError
from imdb_deploy.folders import TRAIN_CONFIG_FIELDS
from imdb_deploy.tokenization import TokenizationSettings
from imdb_deploy.training.config import TrainConfig
from imdb_deploy.training.train import train


def toy_config(tiny_model_dir, toy_data_dir, output, **overrides) -> TrainConfig:
    options = dict(
        model=str(tiny_model_dir),
        data=str(toy_data_dir),
        output_dir=str(output),
        epochs=3,
        batch_size=16,
        lr=1e-2,
        max_length=48,
        val_size=0.1,
        seed=7,
        warmup_ratio=0.0,
    )
    return TrainConfig(**{**options, **overrides})


@pytest.fixture(scope="module")
def trained_dir(tiny_model_dir, toy_data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "model"
    return train(toy_config(tiny_model_dir, toy_data_dir, out), progress=False)


def test_tiny_model_learns_the_separable_toy_task(trained_dir):
    metrics = json.loads((trained_dir / "metrics.json").read_text())
    assert metrics["epochs"][0]["train_loss"] > metrics["epochs"][-1]["train_loss"]
    assert metrics["test"]["accuracy"] >= 0.95
    assert metrics["test"]["samples"] == 100
    assert set(metrics["test"]) >= {"accuracy", "f1", "precision", "recall", "confusion_matrix", "loss"}


def test_model_folder_describes_itself(trained_dir):
    config = json.loads((trained_dir / "train_config.json").read_text())
    assert config["max_length"] == 48 and config["truncation"] == "head+tail"
    assert config["label_names"] == ["negative", "positive"]
    assert config["data_samples"] == {"validation": 40, "train": 360, "test": 100}
    assert config["base_model"] and config["training"]["epochs"] == 3 and config["random_weights"] is False
    assert set(config) == set(TokenizationSettings().to_dict()) | set(TRAIN_CONFIG_FIELDS)  # one set of keys
    assert not (trained_dir / "checkpoints").exists()
    assert "Test results" in (trained_dir / "README.md").read_text()
    model_config = json.loads((trained_dir / "config.json").read_text())
    assert model_config["id2label"] == {"0": "negative", "1": "positive"}


def test_evaluate_gives_the_same_test_numbers_as_train(trained_dir, toy_data_dir, tmp_path):
    out = tmp_path / "m.json"
    result = CliRunner().invoke(cli, ["evaluate", str(trained_dir), "--data", str(toy_data_dir), "-q", "-o", str(out)])
    assert result.exit_code == 0, result.output
    evaluated = json.loads(out.read_text())
    reported = json.loads((trained_dir / "metrics.json").read_text())["test"]
    assert evaluated["confusion_matrix"] == reported["confusion_matrix"]
    assert evaluated["accuracy"] == pytest.approx(reported["accuracy"])


def test_resume_reaches_the_same_weights(tiny_model_dir, toy_data_dir, tmp_path, monkeypatch):
    overrides = dict(epochs=2, checkpoint_every=5, max_train_samples=160, max_eval_samples=20)
    straight = train(toy_config(tiny_model_dir, toy_data_dir, tmp_path / "a", **overrides), progress=False)
    interrupted = toy_config(tiny_model_dir, toy_data_dir, tmp_path / "b", **overrides)
    with monkeypatch.context() as patch:
        interrupt_at_step(patch, 18)  # 10 steps an epoch: dies in epoch 2, after the checkpoint at step 15
        with pytest.raises(Interrupted):
            train(interrupted, progress=False)
    partial = tmp_path / "b"
    assert not (partial / "train_config.json").exists(), "an interrupted run must not look complete"
    assert [p.name for p in (partial / "checkpoints").glob("step-*")] == ["step-15"]
    resumed = train(interrupted, resume=True, progress=False)  # skips the 5 batches of epoch 2 already done
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] - b[key]).abs().max().item() < 1e-6, key


def test_run_stopped_right_after_an_epoch_keeps_that_epoch_in_its_metrics(
    tiny_model_dir, toy_data_dir, tmp_path, monkeypatch
):
    config = toy_config(
        tiny_model_dir, toy_data_dir, tmp_path / "run", epochs=2, checkpoint_every=10, max_train_samples=160
    )
    with monkeypatch.context() as patch:
        interrupt_at_step(patch, 11)  # 10 steps an epoch: the periodic checkpoint falls on epoch 1's last step
        with pytest.raises(Interrupted):
            train(config, progress=False)
    resumed = train(config, resume=True, progress=False)
    epochs = json.loads((resumed / "metrics.json").read_text())["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]


def test_resume_refuses_changed_settings(tiny_model_dir, toy_data_dir, tmp_path, monkeypatch):
    config = toy_config(tiny_model_dir, toy_data_dir, tmp_path / "c", epochs=1, max_train_samples=40)
    with monkeypatch.context() as patch:
        interrupt_at_step(patch, 1)
        with pytest.raises(Interrupted):
            train(config, progress=False)
    changed = toy_config(tiny_model_dir, toy_data_dir, tmp_path / "c", epochs=1, max_train_samples=40, lr=1e-4)
    with pytest.raises(ConfigError, match="lr: was 0.01, now 0.0001"):
        train(changed, resume=True, progress=False)


def test_config_quotes_bad_values():
    with pytest.raises(ConfigError, match="batch_size=0"):
        TrainConfig(batch_size=0)
    with pytest.raises(ConfigError, match="mixed_precision='fp8'"):
        TrainConfig(mixed_precision="fp8")


def test_single_file_cannot_provide_train_and_test(tiny_model_dir, toy_data_dir, tmp_path):
    with pytest.raises(DataError, match="one file, but training needs a train and a test split"):
        train(toy_config(tiny_model_dir, toy_data_dir / "train.parquet", tmp_path / "d"), progress=False)


def test_hub_model_offline_says_so(toy_data_dir, tmp_path):
    with pytest.raises(HubUnreachableError, match="Hub may be out of reach.*local"):
        train(TrainConfig(data=str(toy_data_dir), output_dir=str(tmp_path / "e")), progress=False)


def test_cli_refuses_non_empty_output_and_reports_exit_1(tiny_model_dir, toy_data_dir, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    args = ["train", "--model", str(tiny_model_dir), "--data", str(toy_data_dir), "--output", str(out), "-q"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "is not empty; choose another --output, --resume an interrupted run, or pass --overwrite" in result.output
    assert (out / "keep.txt").exists()


def test_cli_usage_error_exits_2():
    result = CliRunner().invoke(cli, ["train", "--truncation", "tail"])
    assert result.exit_code == 2
    assert "'tail' is not one of 'head', 'head+tail'" in result.output


@pytest.mark.slow
def test_two_process_training_with_torchrun(tiny_model_dir, toy_data_dir, tmp_path):
    out = tmp_path / "ddp"
    if shutil.which("torchrun", path=str(__import__("pathlib").Path(sys.executable).parent)) is None:
        pytest.skip("torchrun not installed next to this interpreter")
    torchrun = str(__import__("pathlib").Path(sys.executable).parent / "torchrun")
    command = [
        torchrun,
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "imdb_deploy",
        "train",
        "--model",
        str(tiny_model_dir),
        "--data",
        str(toy_data_dir),
        "--output",
        str(out),
        "-q",
        "--epochs",
        "3",
        "--lr",
        "1e-2",
        "--max-length",
        "48",
        "--warmup-ratio",
        "0",
        "--seed",
        "7",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2
    assert metrics["test"]["samples"] == 100  # gather_for_metrics drops the padding duplicates
    assert metrics["test"]["accuracy"] >= 0.9


@pytest.mark.parametrize(
    ("cuda", "bf16", "expected"),
    [
        (False, False, ("no", 64, 0, False, False)),
        (True, True, ("bf16", 256, 2, True, True)),
        (True, False, ("fp16", 256, 2, True, True)),
    ],
)
def test_device_defaults_follow_the_device(cuda, bf16, expected):
    from imdb_deploy.training.loop import device_settings

    got = device_settings(TrainConfig(), cuda=cuda, bf16_supported=bf16)
    assert (got.mixed_precision, got.eval_batch_size, got.num_workers, got.pin_memory, got.tf32) == expected


def test_explicit_device_settings_win_over_the_defaults():
    from imdb_deploy.training.loop import device_settings

    config = TrainConfig(mixed_precision="fp16", eval_batch_size=8, num_workers=0, tf32=False)
    got = device_settings(config, cuda=True, bf16_supported=True)
    assert (got.mixed_precision, got.eval_batch_size, got.num_workers, got.tf32) == ("fp16", 8, 0, False)
    with pytest.raises(ConfigError, match="num_workers=-1"):
        TrainConfig(num_workers=-1)
