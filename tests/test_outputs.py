"""The one output mechanism (imdb_deploy.outputs): every writing command refuses an output that is, holds or sits
inside anything it reads, in any spelling, before any work and with nothing touched; and a commit never replaces
what it did not see at the start, so two runs racing for one output cannot both succeed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imdb_deploy.cli import cli
from imdb_deploy.errors import OutputError
from imdb_deploy.outputs import Output

# --- the commit -----------------------------------------------------------------------------------------------


def test_a_file_that_appears_while_the_run_writes_is_not_replaced(tmp_path):
    target = tmp_path / "out.json"
    output = Output(target)
    with pytest.raises(OutputError, match="appeared while this run was writing it"), output.writing() as tmp:
        tmp.write_text("ours")
        target.write_text("someone else's")
    assert target.read_text() == "someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no temporary file left


def test_of_two_runs_racing_for_one_folder_the_second_fails_and_the_first_stays(tmp_path):
    target = tmp_path / "onnx"
    first, second = Output(target, folder=True), Output(target, folder=True)
    with first.writing() as tmp:
        (tmp / "a").write_text("first")
    with pytest.raises(OutputError, match="appeared while this run was writing it"), second.writing() as tmp:
        (tmp / "a").write_text("second")
    assert (target / "a").read_text() == "first"


def test_overwrite_replaces_only_the_folder_seen_at_the_start(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old").write_text("old")
    output = Output(target, folder=True, overwrite=True)
    with pytest.raises(OutputError, match="changed while this run was writing it"), output.writing() as tmp:
        (tmp / "new").write_text("new")
        os.rename(target, tmp_path / "moved")  # someone swaps in another folder meanwhile
        target.mkdir()
        (target / "theirs").write_text("theirs")
    assert sorted(p.name for p in target.iterdir()) == ["theirs"]
    with Output(target, folder=True, overwrite=True).writing() as tmp:
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new"]


def test_a_folder_is_claimed_once_and_a_dead_runs_claim_is_taken_over(tmp_path):
    first = Output(tmp_path / "run", folder=True, reuse=True)
    first.claim()
    with pytest.raises(OutputError, match="is being written by another run"):
        Output(tmp_path / "run", folder=True, reuse=True).claim()
    (tmp_path / "run" / ".imdb-deploy-claim").write_text("999999999")  # a process that is gone
    Output(tmp_path / "run", folder=True, reuse=True).claim()


# --- every writing command refuses an output over what it reads -------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_classifier_dir, tiny_onnx_dir, toy_data_dir):
    """Copies of what the commands read, in a tree of their own: every file of it is checked after each case."""
    import shutil

    root = tmp_path_factory.mktemp("inputs")
    paths = {
        "model": shutil.copytree(tiny_classifier_dir, root / "model"),
        "onnx": shutil.copytree(tiny_onnx_dir, root / "onnx"),
        "data": shutil.copytree(toy_data_dir, root / "data"),
        "reviews": root / "reviews.jsonl",
        "bert": root / "bert",
    }
    paths["reviews"].write_text('{"text": "a fine film"}\n')
    paths["bert"].mkdir()
    (paths["bert"] / "config.json").write_text('{"model_type": "bert"}')
    return root, paths


def commands(paths: dict) -> dict[str, tuple[list, list[str], bool]]:
    """Per writing command: its arguments before --output, the inputs an output may collide with, and whether
    its output is a folder."""
    m, o, d, r = paths["model"], paths["onnx"], paths["data"], paths["reviews"]
    split_files = f"train={d / 'train.parquet'},test={d / 'test.parquet'}"
    return {
        "train": (["train", "--model", m, "--data", d], ["model", "data"], True),
        "train-split-files": (["train", "--model", m, "--data", split_files], ["model", "train.parquet"], True),
        "evaluate": (["evaluate", m, "--data", d], ["model", "data"], False),
        "evaluate-split-files": (["evaluate", m, "--data", split_files], ["test.parquet"], False),
        "export": (["export", m, "--data", d, "--quantize"], ["model", "data"], True),
        "export-calibration": (["export", m, "--data", split_files, "--calibration-data", r], ["reviews"], True),
        "verify": (["verify", o, "--model", m, "--data", d], ["onnx", "model", "data"], False),
        "predict": (["predict", r, "-m", o], ["reviews", "onnx"], False),
        "predict-errors": (["predict", r, "-m", o, "--on-error", "skip", "--errors"], ["reviews", "onnx"], False),
        "predict-ray": (["predict", r, "-m", o, "--engine", "ray"], ["reviews", "onnx"], True),
        "bench": (["bench", "-m", m, "--data", d], ["model", "data"], True),
        "demo": (["demo", "--model", m, "--data", d], ["model", "data"], True),
        "convert-bert": (["convert-bert", paths["bert"]], ["bert"], True),
        "distill": (["distill", m, "--data", d], ["model", "data"], True),
    }


def resolve_input(paths: dict, name: str) -> Path:
    return paths[name] if name in paths else paths["data"] / name


def spell(root: Path, target: Path, how: str, folder_output: bool) -> Path | str | None:
    """An output path that names `target` (or something over or under it) in another spelling; None where the
    spelling does not apply."""
    if how == "same":
        return target
    if how == "dotdot":
        return target.parent / ".." / target.parent.name / target.name
    if how == "dot-slash":
        return Path(os.path.relpath(target, Path.cwd()))
    if how == "symlink":
        link = root / f"link-{abs(hash(str(target))) % 10**8}"
        if not link.is_symlink():
            link.symlink_to(target)
        return link
    if how == "hardlink":
        if target.is_dir():
            return None
        link = root / f"hard-{abs(hash(str(target))) % 10**8}{target.suffix}"
        if not link.exists():
            os.link(target, link)
        return link
    if how == "inside":
        return target / "out" if target.is_dir() else None
    if how == "parent":
        return target.parent if folder_output else None
    if how == "file-url":
        return f"file://{target}"
    raise AssertionError(how)


def snapshot(root: Path) -> dict:
    return {
        str(p.relative_to(root)): (p.is_symlink(), p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


SPELLINGS = ("same", "dotdot", "dot-slash", "symlink", "hardlink", "inside", "parent", "file-url")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_writing_command_accepts_an_output_over_an_input_in_any_spelling(inputs, data):
    root, paths = inputs
    cases = commands(paths)
    command = data.draw(st.sampled_from(sorted(cases)), label="command")
    args, names, folder_output = cases[command]
    target = resolve_input(paths, data.draw(st.sampled_from(names), label="input"))
    how = data.draw(st.sampled_from(SPELLINGS), label="spelling")
    out = spell(root, target, how, folder_output)
    if out is None or (how == "file-url" and not command.startswith("predict")):
        return  # a spelling that names nothing for this input, or a URL where the option takes a path
    before = snapshot(root)
    flag = [] if command == "predict-errors" else ["-o"]
    result = CliRunner().invoke(cli, [str(a) for a in [*args, *flag, out]] + ["-q"] * (command != "convert-bert"))
    assert result.exit_code == 1, (command, how, out, result.output)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), (command, how, result.output)
    assert any(word in lines[0] for word in (" is ", " holds ", " is inside ")), lines[0]
    assert snapshot(root) == before, (command, how)
