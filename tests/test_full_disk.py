"""A full disk during train and export: one line, nothing half-written left filling the disk; and model weights
written with the umask's permissions (safetensors writes 0600 on its own).

The disk fills inside the libraries, each failing its own way: torch.save a RuntimeError that names no cause,
safetensors and tokenizers a plain Exception ending "(os error 28)". The writes are patched to fail like that
after part of the file is written.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from conftest import Interrupted, interrupt_at_step
from test_faults import leftovers, one_line_error, run_cli, umask_027  # noqa: F401 (a fixture)

import imdb_deploy.fileio as fileio

RUST_FULL = "Error while serializing: I/O error: No space left on device (os error 28)"
TORCH_FULL = "[enforce fail at inline_container.cc:664] . unexpected pos 4160 vs 4058"


def train_args(model, data, out, *extra):
    return ["train", "--model", model, "--data", data, "-o", out, "--epochs", 1, "--batch-size", 16, "--lr", 1e-2,
            "--max-length", 32, "--val-size", 0, "--max-train-samples", 96, "--max-eval-samples", 16,
            "--checkpoint-every", 2, "-q", *extra]  # fmt: skip


def fill_on_call(monkeypatch, owner, name: str, call: int, message: str):
    """Make owner.name write part of its output, then fail like a full disk, on its `call`-th call."""
    real = getattr(owner, name)
    calls = {"n": 0}

    def partial_then_full(self, folder, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] != call:
            return real(self, folder, *args, **kwargs)
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "half-written.bin").write_bytes(b"\0" * 4096)
        raise (RuntimeError if message == TORCH_FULL else Exception)(message)

    monkeypatch.setattr(owner, name, partial_then_full)


@pytest.mark.parametrize("message", [TORCH_FULL, RUST_FULL])
def test_train_onto_a_full_disk_is_one_line_and_leaves_no_partial_checkpoint(
    tiny_model_dir, toy_data_dir, tmp_path, monkeypatch, message
):
    from accelerate import Accelerator

    out = tmp_path / "model"
    with monkeypatch.context() as patch:
        fill_on_call(patch, Accelerator, "save_state", 2, message)  # step-2 is saved, step-4 fills the disk
        if message == TORCH_FULL:  # torch says nothing of the cause: the free space is what tells
            patch.setattr(fileio, "disk_nearly_full", lambda path, margin=0: True)
        line = one_line_error(run_cli(train_args(tiny_model_dir, toy_data_dir, out)))
    assert line.startswith(f"Error: {out}: ran out of disk space while saving checkpoint step-4 (")
    assert line.endswith(
        "free some space, then run the same command again with --resume (the last complete checkpoint is kept). "
        "The partial checkpoint step-4 was removed"
    )
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*")) == ["step-2"]
    assert (out / "checkpoints" / "step-2" / "state.json").is_file()
    result = run_cli(train_args(tiny_model_dir, toy_data_dir, out, "--resume"))
    assert result.exit_code == 0, result.output
    assert json.loads((out / "train_config.json").read_text())["max_length"] == 32


def test_train_out_of_space_saving_the_model_removes_what_it_wrote(tiny_model_dir, toy_data_dir, tmp_path, monkeypatch):
    from transformers import PreTrainedModel

    out = tmp_path / "model"
    with monkeypatch.context() as patch:
        fill_on_call(patch, PreTrainedModel, "save_pretrained", 1, RUST_FULL)
        line = one_line_error(run_cli(train_args(tiny_model_dir, toy_data_dir, out)))
    assert line.startswith(f"Error: {out}: ran out of disk space while saving model (Error while serializing")
    assert not (out / ".finishing").exists() and not (out / "model.safetensors").exists()
    assert (out / "checkpoints" / "step-6" / "state.json").is_file()  # --resume finishes from here


def test_train_overwrite_out_of_space_removes_its_work_folder_and_keeps_the_old_model(
    tiny_model_dir, toy_data_dir, tmp_path, monkeypatch
):
    from accelerate import Accelerator

    out = tmp_path / "model"
    out.mkdir()
    (out / "train_config.json").write_text("{}")
    with monkeypatch.context() as patch:
        fill_on_call(patch, Accelerator, "save_state", 1, RUST_FULL)
        line = one_line_error(run_cli(train_args(tiny_model_dir, toy_data_dir, out, "--overwrite")))
    assert "ran out of disk space while saving checkpoint step-2" in line and line.endswith(
        "then train again. The partial checkpoint step-2 was removed"
    )
    assert (out / "train_config.json").read_text() == "{}" and leftovers(tmp_path) == []


def test_export_out_of_space_while_saving_the_tokenizer_is_one_line(tiny_classifier_dir, tmp_path, monkeypatch):
    from imdb_deploy.runtimes.folder import load_tokenizer

    fill_on_call(monkeypatch, type(load_tokenizer(tiny_classifier_dir)), "save_pretrained", 1, RUST_FULL)
    out = tmp_path / "onnx"
    line = one_line_error(run_cli(["export", tiny_classifier_dir, "-o", out, "--no-verify", "-q"]))
    assert line == (
        f"Error: {out}: ran out of disk space while exporting ({RUST_FULL}); free some space or export elsewhere "
        "with --output. Nothing was written"
    )
    assert not out.exists() and leftovers(tmp_path) == []


def test_model_weights_honour_the_umask_in_the_model_and_its_checkpoints(
    tiny_model_dir,
    toy_data_dir,
    tmp_path,
    monkeypatch,
    umask_027,  # noqa: F811
):
    from imdb_deploy.training.config import TrainConfig
    from imdb_deploy.training.train import train

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    options = dict(model=str(tiny_model_dir), data=str(toy_data_dir), epochs=1, batch_size=16, lr=1e-2, seed=7)
    options.update(max_length=32, val_size=0, max_train_samples=96, max_eval_samples=16, checkpoint_every=2)
    config = TrainConfig(**options, output_dir=str(tmp_path / "model"))
    with monkeypatch.context() as patch, pytest.raises(Interrupted):
        interrupt_at_step(patch, 4)  # stopped after the step-2 checkpoint
        train(config, progress=False)
    checkpoint = tmp_path / "model" / "checkpoints" / "step-2"
    assert "model.safetensors" in {p.name for p in checkpoint.iterdir()}
    assert {p.name: mode(p) for p in checkpoint.iterdir() if p.is_file()} == {
        p.name: 0o640 for p in checkpoint.iterdir() if p.is_file()
    }
    out = train(config, resume=True, progress=False)
    assert mode(out / "model.safetensors") == 0o640
    assert {p.name: mode(p) for p in out.iterdir() if p.is_file()} == {
        p.name: 0o640 for p in out.iterdir() if p.is_file()
    }
