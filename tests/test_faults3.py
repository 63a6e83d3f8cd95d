"""The hostile-input and fault suite, round three (issue 31): reading, the verdict's files, bad model folders,
Ray's stderr and leftovers, and small ones.

As in tests/test_faults.py: every case ends in exit 0 with complete output, or exit 1 with one line naming the
place and the fix; no traceback.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import (
    IMDB_DEPLOY,
    Interrupted,
    checkpointed_run,
    interrupt_at_step,
    one_line_error,
    run_cli,
    toy_reviews,
    write_jsonl,
)


def reviews(n: int, seed: int = 11) -> list[dict]:
    texts, _ = toy_reviews(n, seed=seed)
    return [{"id": f"r{i}", "text": text} for i, text in enumerate(texts)]


@pytest.fixture(scope="module")
def onnx_dir(tiny_onnx_dir):
    return tiny_onnx_dir


@pytest.fixture
def onnx_copy(onnx_dir, tmp_path):
    folder = tmp_path / "onnx-copy"
    shutil.copytree(onnx_dir, folder)
    return folder


# --- 1. a CSV record over the cap is one bad row; reading resumes at the next record --------------------


def _quoted_review(lines: int, width: int = 40, nl: str = "\n") -> str:
    """A quoted CSV field of `lines` lines, each about `width` bytes, holding commas and doubled quotes."""
    return '"' + nl.join(f'line {i}, a ""quoted"" word{"." * width}' for i in range(lines)) + '"'


@pytest.mark.parametrize(
    "variant",
    ["many short lines", "first line over the cap", "a later line over the cap", "crlf", "several", "at the end"],
)
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_a_csv_record_over_the_cap_is_one_bad_row_and_reading_resumes_at_the_next_record(
    onnx_dir, tmp_path, monkeypatch, variant, gz
):
    import imdb_deploy.rows.readers as readers

    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 2000)
    nl = "\r\n" if variant == "crlf" else "\n"
    big = {
        "first line over the cap": '"' + "x, " * 1000 + nl + "1,then a line that looks like a row" + nl + 'end"',
        "a later line over the cap": '"short' + nl + "2,looks like a row" + nl + "y" * 3000 + nl + 'end"',
    }.get(variant, _quoted_review(200, nl=nl))  # 200 lines of about 70 bytes: each short, the field 14 KB
    records = ["a,fine film", f"b,{big}", "c,great film"]
    if variant == "several":
        records = ["a,fine film", f"b,{big}", f"b2,{big}", "c,great film", f"d,{big}"]
    if variant == "at the end":
        records = ["a,fine film", "c,great film", f"b,{big}"]
    content = ("id,text" + nl + nl.join(records) + (nl if variant != "at the end" else "")).encode()
    source = tmp_path / ("in.csv.gz" if gz else "in.csv")
    source.write_bytes(gzip.compress(content) if gz else content)
    errors = tmp_path / "bad.jsonl"

    args = ["predict", source, "-m", onnx_dir, "--id-field", "id", "--on-error", "skip", "--errors", errors, "-q"]
    result = run_cli(args)

    assert result.exit_code == 0, result.output
    good = [r for r in records if len(r) < 100]
    bad = [r for r in records if len(r) >= 100]
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [r.split(",")[0] for r in good]
    assert result.stderr.startswith(f"{len(records)} input rows = {len(good)} scored + {len(bad)} error")
    starts = [2 + sum(r.count("\n") + 1 for r in records[:i]) for i, r in enumerate(records) if len(r) >= 100]
    got = [json.loads(line) for line in errors.read_text().splitlines()]
    assert [row["line"] for row in got] == starts
    for row in got:
        assert "over the limit of 2,000 bytes" in row["reason"] and row["fix"].startswith("shorten the review")

    # --on-error fail: one line naming the record's first line
    line = one_line_error(run_cli(["predict", source, "-m", onnx_dir, "--id-field", "id", "-q"]))
    assert f"line {starts[0]}: a field of this record (lines {starts[0]} to " in line


def test_a_csv_quote_never_closed_past_the_cap_still_reads_the_rows_after_it_again(onnx_dir, tmp_path, monkeypatch):
    """The other side of the line: a quote that never closes (or closes and breaks) is not a record to skip;
    its first line is the bad row and every line after it is read again, also from a gzip stream."""
    import imdb_deploy.rows.readers as readers

    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 2000)
    body = "".join(f"{i},good film number {i}\n" for i in range(3, 403))
    for tail in ("", '5000,"closes"here\n'):  # never closed; closed then broken (text after the quote)
        source = tmp_path / "in.csv.gz"
        source.write_bytes(gzip.compress(('id,text\n1,fine film\n2,"a quote never closed\n' + body + tail).encode()))
        result = run_cli(["predict", source, "-m", onnx_dir, "--id-field", "id", "--on-error", "skip", "-q"])
        assert result.exit_code == 0, result.output
        ids = [json.loads(line)["id"] for line in result.stdout.splitlines()]
        assert ids[:401] == ["1", *map(str, range(3, 403))]
        assert "line 3: a field is over the limit of 2,000 bytes (a quote never closed?)" in result.stderr


# --- 2. globs read each file once and never loop -------------------------------------------------------


def test_globs_and_folders_read_each_file_once_and_never_enter_symlinked_folders(onnx_dir, tmp_path, monkeypatch):
    """`**` does not enter a symlinked folder, as a folder input does not: a link to the folder itself, a link
    back up (two loops) and a link to a folder outside are not followed; a file reached by several names (a
    link, a hard link, two inputs) is read once. Local globs, file:// URL globs and folders agree."""
    import signal

    from imdb_deploy.rows.sources import expand_inputs

    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    write_jsonl(root / "a.jsonl", reviews(10))
    write_jsonl(root / "sub" / "b.jsonl", reviews(10, seed=12))
    write_jsonl(outside / "c.jsonl", reviews(3, seed=13))
    (root / "again").symlink_to(".")
    (root / "sub" / "up").symlink_to("..")
    (root / "elsewhere").symlink_to(outside)
    (root / "sub" / "a-link.jsonl").symlink_to(root / "a.jsonl")
    os.link(root / "a.jsonl", root / "sub" / "a-hard.jsonl")
    expected = [str(root / "a.jsonl"), str(root / "sub" / "b.jsonl")]

    class Endless(Exception):  # not an OSError (TimeoutError is), which glob would swallow
        pass

    def on_alarm(*_):
        raise Endless("the expansion did not end")

    before = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(30)
    try:
        assert expand_inputs([f"{root}/**/*.jsonl"]) == expected
        assert expand_inputs([f"{root}/**"]) == expected
        assert expand_inputs([f"{tmp_path}/i*/**/*.jsonl"]) == expected  # a glob before the "**"
        assert expand_inputs([str(root)]) == expected  # the folder form: the same files
        assert expand_inputs([str(root / "a.jsonl"), f"{root}/**/*.jsonl"]) == expected
        assert expand_inputs([f"file://{root}/**/*.jsonl"]) == [f"file://{p}" for p in expected]
        assert expand_inputs([f"file://{root}"]) == [f"file://{p}" for p in expected]
        assert expand_inputs([f"{root}/elsewhere/**/*.jsonl"]) == [str(root / "elsewhere" / "c.jsonl")]  # named: read
        monkeypatch.chdir(root)
        assert expand_inputs(["**/*.jsonl"]) == ["a.jsonl", "sub/b.jsonl"]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, before)

    result = run_cli(["predict", f"{root}/**/*.jsonl", "-m", onnx_dir, "-q"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 20
    assert result.stderr.startswith("2 files: 20 input rows = 20 scored + 0 errors")


# --- 3. the verdict's files: names confined to the folder; the graph's external data as it names it --------


def _rewrite_report(folder: Path, **changes) -> None:
    report = json.loads((folder / "export_report.json").read_text())
    report.update(changes)
    (folder / "export_report.json").write_text(json.dumps(report))


def _record_checksums(folder: Path) -> None:
    from imdb_deploy.runtimes.folder import file_checksums

    _rewrite_report(folder, checksums=file_checksums(folder))


@pytest.mark.parametrize("key", ["/etc/hostname", "../secret.txt", "onnx/../../secret.txt", "..", ".", "", "a\\b"])
def test_checksum_keys_that_are_not_plain_names_in_the_folder_are_refused_before_any_file_is_opened(
    onnx_copy, tmp_path, monkeypatch, key
):
    import imdb_deploy.runtimes.folder as model_folder
    from imdb_deploy.errors import ModelLoadError
    from imdb_deploy.runtimes.folder import ExportFolder

    (tmp_path / "secret.txt").write_text("secret")
    (onnx_copy / "sub").mkdir()
    shutil.copy(onnx_copy / "config.json", onnx_copy / "sub" / "config.json")
    report = json.loads((onnx_copy / "export_report.json").read_text())
    _rewrite_report(onnx_copy, checksums={**report["checksums"], key: {"sha256": "0" * 64, "bytes": 6}})

    def never(*args, **kwargs):
        raise AssertionError(f"opened {args[0]} before refusing the report")

    monkeypatch.setattr(model_folder, "sha256_file", never)
    monkeypatch.setattr(model_folder.onnx, "load", never)
    with pytest.raises(ModelLoadError, match="its checksums name .* which is not a file name inside the folder"):
        ExportFolder(onnx_copy).check_files(onnx_copy / "onnx" / "model.onnx")
    monkeypatch.undo()

    line = one_line_error(run_cli(["predict", "-", "-m", onnx_copy, "--variant", "fp32", "-q"], input="fine\n"))
    assert f"its checksums name {key!r}, which is not a file name inside the folder" in line
    assert "changed" not in line and "matched" not in line  # nothing said about the named file


def test_a_checked_file_that_links_out_of_the_folder_is_refused_even_when_its_bytes_match(onnx_copy, tmp_path):
    outside = tmp_path / "outside-config.json"
    shutil.move(onnx_copy / "config.json", outside)
    (onnx_copy / "config.json").symlink_to(outside)  # the same bytes: its checksum matches
    line = one_line_error(run_cli(["predict", "-", "-m", onnx_copy, "--variant", "fp32", "-q"], input="fine\n"))
    assert line.startswith(f"Error: {onnx_copy / 'config.json'}: a link to {outside}, outside the folder")
    (onnx_copy / "config.json").unlink()
    (onnx_copy / "config.json").symlink_to("tokenizer_config.json")  # a link inside the folder: no escape
    line = one_line_error(run_cli(["predict", "-", "-m", onnx_copy, "--variant", "fp32", "-q"], input="fine\n"))
    assert "changed since export" in line


@pytest.mark.parametrize("location", ["weights.data", "x.bin", "model.onnx_data"])
def test_external_data_under_any_name_is_hashed_as_the_graph_names_it(onnx_copy, location):
    """A graph whose weights live in a file of any name: that file is checked on every load (the graph names
    it), so a same-size swap is refused; `verify --record` re-records it; a graph naming a file outside the
    folder is refused."""
    import onnx

    from imdb_deploy.runtimes.folder import ExportFolder, external_data_names, graph_companions

    graph = onnx_copy / "onnx" / "model.onnx"
    model = onnx.load(graph)
    onnx.save_model(model, graph, save_as_external_data=True, location=location, size_threshold=0)
    _record_checksums(onnx_copy)
    assert external_data_names(graph) == (location,)
    assert onnx_copy / "onnx" / location in graph_companions(graph)
    args = ["predict", "-", "-m", onnx_copy, "--variant", "fp32", "-q"]
    assert run_cli(args, input="fine film\n").exit_code == 0
    assert f"onnx/{location}" in ExportFolder(onnx_copy).check_files(graph).files

    weights = bytearray((onnx_copy / "onnx" / location).read_bytes())
    weights[-8:] = bytes(8) if weights[-8:] != bytes(8) else b"\x01" * 8  # same size, other values
    (onnx_copy / "onnx" / location).write_bytes(bytes(weights))
    line = one_line_error(run_cli(args, input="fine film\n"))
    assert line.startswith(f"Error: {onnx_copy / 'onnx' / location}: changed since export")

    # the same graph naming its weights outside the folder: refused before anything is hashed
    model = onnx.load(graph, load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../" + location
    onnx.save_model(model, graph)
    _record_checksums(onnx_copy)
    line = one_line_error(run_cli(args, input="fine film\n"))
    assert f"names its external data '../{location}', which is not a file inside the folder" in line


# --- 4. bad model folders: one line naming the file and the fix ------------------------------------------


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    damaged = {"truncated": data[: len(data) // 2], "empty": b"", "random": os.urandom(len(data))}[how]
    path.write_bytes(damaged)


@pytest.mark.parametrize("how", ["truncated", "empty", "random"])
def test_a_damaged_model_safetensors_is_one_line_naming_the_file(
    tiny_classifier_dir, onnx_dir, toy_data_dir, tmp_path, how
):
    folder = tmp_path / "classifier"
    shutil.copytree(tiny_classifier_dir, folder)
    _damage(folder / "model.safetensors", how)
    for args in (
        ["export", folder, "-o", tmp_path / "onnx", "-q"],
        ["evaluate", folder, "--data", toy_data_dir, "-q"],
        ["verify", onnx_dir, "--model", folder, "--data", toy_data_dir, "--verify-samples", "8", "-q"],
        ["train", "--model", folder, "--data", toy_data_dir, "-o", tmp_path / "trained", "-q"],
    ):
        line = one_line_error(run_cli(args))
        assert line.startswith(f"Error: {folder / 'model.safetensors'}: not a readable safetensors file ("), line
        assert line.endswith(
            "it is empty, cut short or damaged; copy it again from where it came, or re-create the "
            "folder with the stage that wrote it"
        )
    assert not (tmp_path / "onnx").exists() and not (tmp_path / "trained").exists()


def test_train_resume_from_a_checkpoint_with_damaged_weights_is_one_line(
    tiny_model_dir, toy_data_dir, tmp_path, monkeypatch
):

    options, checkpoint = checkpointed_run(tiny_model_dir, toy_data_dir, tmp_path, monkeypatch)
    weights = checkpoint / "model.safetensors"
    original = weights.read_bytes()
    for how in ("truncated", "empty", "random"):
        weights.write_bytes(original)
        _damage(weights, how)
        args = ["train", "--model", tiny_model_dir, "--data", toy_data_dir, "-o", tmp_path / "run", "--resume"]
        args += ["--epochs", "1", "--max-train-samples", "32", "--max-eval-samples", "16", "--max-length", "32"]
        line = one_line_error(run_cli([*args, "--checkpoint-every", "1", "--seed", "3", "-q"]))
        assert line.startswith(f"Error: {weights}: not a readable safetensors file ("), line
        assert line.endswith(f"delete {tmp_path / 'run' / 'checkpoints'} and train again without --resume")


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused_in_one_line_without_torchs_advice(
    tiny_classifier_dir, onnx_dir, toy_data_dir, tmp_path, monkeypatch
):
    """A pytorch_model.bin (beside or instead of model.safetensors) or a checkpoint's optimizer.bin that asks
    for os.system: refused by the weights-only loader, no code ran, and the line never tells the user to pass
    weights_only=False; a random or truncated .bin is one line too."""
    import torch
    from safetensors.torch import load_file

    marker = tmp_path / "pickle-ran"
    folder = tmp_path / "classifier"
    shutil.copytree(tiny_classifier_dir, folder)
    weights = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    for content in ("code", "random", "truncated"):
        if content == "code":
            torch.save({"x": _RunsCode(marker)}, folder / "pytorch_model.bin")
        elif content == "random":
            (folder / "pytorch_model.bin").write_bytes(os.urandom(20_000))
        else:
            torch.save(weights, folder / "pytorch_model.bin")
            _damage(folder / "pytorch_model.bin", "truncated")
        for args in (
            ["export", folder, "-o", tmp_path / "onnx", "-q"],
            ["evaluate", folder, "--data", toy_data_dir, "-q"],
            ["verify", onnx_dir, "--model", folder, "--data", toy_data_dir, "--verify-samples", "8", "-q"],
        ):
            line = one_line_error(run_cli(args))
            assert line.startswith(f"Error: {folder / 'pytorch_model.bin'}: could not be loaded ("), line
            assert "weights_only" not in line and "Weights only" not in line, line
            if content == "code":
                assert "it asks for posix.system, which is not a tensor" in line
    assert not marker.exists() and not (tmp_path / "onnx").exists()


def test_train_resume_never_prints_torchs_advice_to_load_a_pickle(tiny_model_dir, toy_data_dir, tmp_path, monkeypatch):
    import pickle

    from imdb_deploy.errors import ConfigError
    from imdb_deploy.training.config import TrainConfig
    from imdb_deploy.training.train import train

    monkeypatch.chdir(tmp_path)
    options = dict(model=str(tiny_model_dir), data=str(toy_data_dir), output_dir=str(tmp_path / "run"), epochs=1)
    options.update(max_train_samples=32, max_eval_samples=16, max_length=32, checkpoint_every=1, seed=3)
    with monkeypatch.context() as patch, pytest.raises(Interrupted):
        interrupt_at_step(patch, 2)
        train(TrainConfig(**options), progress=False)
    (checkpoint,) = (tmp_path / "run" / "checkpoints").glob("step-*")
    (checkpoint / "optimizer.bin").write_bytes(pickle.dumps({"state": _RunsCode(tmp_path / "pickle-ran")}, protocol=2))
    with pytest.raises(ConfigError) as caught:
        train(TrainConfig(**options), resume=True, progress=False)
    message = str(caught.value)
    assert "it asks for posix.system, which is not a tensor" in message and "weights_only" not in message
    assert "\n" not in message and not (tmp_path / "pickle-ran").exists()


def test_a_tokenizer_with_ids_past_the_embedding_table_is_refused_before_anything_runs(
    tiny_classifier_dir, onnx_copy, toy_data_dir, tmp_path
):
    """More tokens in the tokenizer than config.json's vocab_size: export (its gate), evaluate, predict and verify
    refuse the folder in one line, before a review is scored (artifacts.load_tokenizer)."""
    from transformers import AutoTokenizer

    folder = tmp_path / "classifier"
    shutil.copytree(tiny_classifier_dir, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    size = json.loads((folder / "config.json").read_text())["vocab_size"]
    assert len(tokenizer) == size
    tokenizer.add_tokens(["quokka", "zebra"])
    tokenizer.save_pretrained(folder)
    tokenizer.save_pretrained(onnx_copy)
    _record_checksums(onnx_copy)  # the verdict covers the new files: only the size check stands in the way
    expected = f"the tokenizer has {size + 2:,} tokens but config.json's vocab_size is {size:,}, so token ids"
    for args, where in (
        (["export", folder, "-o", tmp_path / "onnx", "-q"], folder),
        (["evaluate", folder, "--data", toy_data_dir, "-q"], folder),
        (["predict", "-", "-m", onnx_copy, "--variant", "fp32", "-q"], onnx_copy),
        (
            [
                "verify",
                onnx_copy,
                "--model",
                tiny_classifier_dir,
                "--data",
                toy_data_dir,
                "--verify-samples",
                "8",
                "-q",
            ],
            onnx_copy,
        ),
    ):
        line = one_line_error(run_cli(args, input="a quokka and a zebra\n"))
        assert line.startswith(f"Error: {where}: {expected} {size:,} and above have no embedding; use the tokenizer")
    assert not (tmp_path / "onnx").exists()


# --- 6. Parquet text in any Arrow string-like type is text ----------------------------------------------


def _text_column(kind: str, texts: list):
    import pandas as pd
    import pyarrow as pa

    if kind == "pandas categorical":
        return pa.Table.from_pandas(pd.DataFrame({"text": pd.Categorical(texts)})).column("text")
    arrow_type = {"large_string": pa.large_string(), "string_view": pa.string_view()}.get(kind, pa.string())
    if kind == "dictionary of large_string":
        arrow_type = pa.large_string()
    column = pa.array(texts, arrow_type)
    return column.dictionary_encode() if kind.startswith("dictionary") else column


TEXT_KINDS = ["dictionary", "pandas categorical", "string_view", "large_string", "dictionary of large_string"]


@pytest.mark.parametrize("kind", TEXT_KINDS)
def test_parquet_text_in_any_string_like_arrow_type_is_text(onnx_dir, tmp_path, kind):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from imdb_deploy.rows.readers import ParquetReader
    from imdb_deploy.runtimes.predictor import Predictor

    texts = [r["text"] for r in reviews(6)] + [None, reviews(1)[0]["text"]]  # a repeat, as categories have
    column = _text_column(kind, texts)
    table = pa.table({"id": [f"r{i}" for i in range(len(texts))], "text": column})
    source = tmp_path / "in.parquet"
    pq.write_table(table, source)
    stored = pq.read_schema(source).field("text").type
    assert not pa.types.is_string(stored), stored  # the file keeps the type: not plain string
    with source.open("rb") as f:
        from_file = [(row.id, row.text, row.reason) for row in ParquetReader(str(source), f)]
    assert [r[2] for r in from_file if r[1] is None] == ["column 'text' is null, not a string"]
    result = run_cli(["predict", source, "-m", onnx_dir, "--variant", "fp32", "--on-error", "skip", "-q"])
    assert result.exit_code == 0, result.output
    got = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["id"] for row in got] == [f"r{i}" for i in range(len(texts)) if texts[i] is not None]
    expected = Predictor(onnx_dir, variant="fp32").predict_proba([t for t in texts if t is not None])
    assert [row["label"] for row in got] == [("negative", "positive")[k] for k in expected.argmax(axis=1)]
    assert f"skipped {source}, row 7: column 'text' is null, not a string" in result.stderr


# --- 8. small ones -------------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", [1.0996, 1.0994, 1.1, 1.1004, 1.09949, 1.09951, 0.5, 2.0])
def test_the_runtime_choice_line_states_the_number_it_decided_on(ratio):
    """The decision, the recorded gain and the printed gain are one number: never "ran 1.10x (< 1.1x)"."""
    import re

    from imdb_deploy.runtimes.choice import MIN_GAIN, choose

    timings = {"int8": {"reviews_per_second": 100.0}, "openvino-int8": {"reviews_per_second": 100.0 * ratio}}
    result = choose("int8", timings, ["openvino-int8"])
    shown = float(re.search(r"(\d+\.\d+)x (?:>=|\(<)", result["reason"]).group(1))
    assert shown == result["gain"]
    assert (result["winner"] == "openvino-int8") == (shown >= MIN_GAIN)
    assert ("(<" in result["reason"]) == (result["winner"] == "int8")


def test_train_q_draws_no_progress_bar(tiny_model_dir, toy_data_dir, tmp_path):
    args = ["train", "--model", tiny_model_dir, "--data", toy_data_dir, "-o", tmp_path / "model", "-q"]
    result = run_cli([*args, "--epochs", "1", "--max-train-samples", "32", "--max-eval-samples", "16"])
    assert result.exit_code == 0, result.output
    assert "Writing model shards" not in result.stderr and "it/s]" not in result.stderr, result.stderr
    assert (tmp_path / "model" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    "files",
    [
        ("train.csv", "train.jsonl"),
        ("train.parquet", "train.json"),
        ("train.parquet", "train-00000-of-00002.parquet", "train-00001-of-00002.parquet"),
        ("train.csv", "data/train.parquet"),
        ("test.csv", "test.jsonl"),
    ],
)
def test_a_data_folder_holding_one_split_twice_is_refused_naming_both(tiny_model_dir, toy_data_dir, tmp_path, files):
    import pandas as pd

    folder = tmp_path / "data"
    (folder / "data").mkdir(parents=True)
    frames = {split: pd.read_parquet(toy_data_dir / f"{split}.parquet") for split in ("train", "test")}
    for name in (*files, "test.parquet" if files[0].startswith("train") else "train.parquet"):
        frame, path = frames[Path(name).name.split(".")[0].split("-")[0]], folder / name
        if path.suffix == ".csv":
            frame.to_csv(path, index=False)
        elif path.suffix == ".parquet":
            frame.to_parquet(path)
        else:
            frame.to_json(path, orient="records", lines=True)
    split = files[0].split(".")[0]
    for args in (
        ["train", "--model", tiny_model_dir, "--data", folder, "-o", tmp_path / "model", "-q"],
        ["evaluate", tiny_model_dir, "--data", folder, "--split", split, "-q"],
    ):
        if args[0] == "evaluate" and split != "test":
            args[args.index("--split") + 1] = "train"
        line = one_line_error(run_cli(args))
        assert f"{folder}: the {split} split is there" in line
        for name in files:
            shown = name if "-0000" not in name else f"{split}-*.parquet"
            assert str(folder / shown) in line, line
        assert line.endswith(f"keep one (move the others away), or name the files with --data {split}=FILE,...")
    assert not (tmp_path / "model").exists()


def _raw_request(url: str, head: str, body: bytes = b"") -> int:
    """The status of one raw HTTP/1.1 request (headers exactly as written), or 0 when the server closed."""
    import socket

    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        reply = sock.recv(4096)
    return int(reply.split()[1]) if reply else 0


def test_two_host_headers_are_400_over_real_http(onnx_dir):
    pytest.importorskip("fastapi")
    from test_serve import make_app, running

    body = b'{"inputs": "a good film"}'
    post = f"POST /predict HTTP/1.1\ncontent-type: application/json\ncontent-length: {len(body)}\n"
    for limits in ({}, {"allowed_hosts": ("*",)}, {"allowed_hosts": ("a.example", "b.example")}):
        app, _ = make_app(onnx_dir, **limits)
        with running(app) as url:
            own = url.removeprefix("http://")
            for hosts in ((own, own), (own, "evil.example"), ("a.example", "b.example"), (own, own, own)):
                lines = "".join(
                    f"{name}: {value}\n" for name, value in zip(("Host", "host", "HOST"), hosts, strict=False)
                )
                assert _raw_request(url, f"GET /health HTTP/1.1\n{lines}") == 400
                assert _raw_request(url, f"{post}{lines}", body) == 400
            one = "a.example" if "a.example" in limits.get("allowed_hosts", ()) else own
            assert _raw_request(url, f"GET /health HTTP/1.1\nHost: {one}\n") == 200
            assert _raw_request(url, f"{post}Host: {one}\n", body) == 200


# --- Ray: the same readers (1, 6), one line on stderr (5), leftovers of a killed driver (7) -------------


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs) for the Ray tests here; its GCS address lets a subprocess join it."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    from imdb_deploy.engines.cluster import connect

    os.environ.pop("RAY_ADDRESS", None)
    started = connect(num_cpus=2, quiet=True)
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()


def _run_ray(onnx_dir, inputs, output, **options):
    from imdb_deploy.engines.config import RayPredictConfig
    from imdb_deploy.engines.ray import predict_ray

    config = RayPredictConfig(variant="fp32", progress=False, actors=(1, 1), **options)
    return predict_ray(onnx_dir, [str(i) for i in inputs], output, config)


def test_the_ray_engine_reads_an_oversized_csv_record_and_string_like_parquet_text_as_the_local_one(
    local_ray, onnx_dir, tmp_path
):
    """Items 1 and 6 in the Ray engine: a CSV record with a quoted review over the real 4 MiB cap (gzip) is one
    bad row and the next record is read; Parquet text columns of every string-like type are text."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from imdb_deploy.rows.config import MAX_LINE_BYTES

    data = tmp_path / "data"
    data.mkdir()
    huge = '"' + "\n".join(f"line {i}, a long review" + "." * 4000 for i in range(MAX_LINE_BYTES // 4000 + 10)) + '"'
    csv_text = "id,text\r\na,fine film\r\nb," + huge.replace("\n", "\r\n") + "\r\nc,great film\r\n"
    (data / "big.csv.gz").write_bytes(gzip.compress(csv_text.encode()))
    texts = [r["text"] for r in reviews(6)]
    for kind in TEXT_KINDS:
        table = pa.table({"id": [f"{kind}-{i}" for i in range(6)], "text": _text_column(kind, texts)})
        pq.write_table(table, data / f"{kind}.parquet")
    out = tmp_path / "out"
    summary = _run_ray(onnx_dir, [data], out, on_error="skip", id_field="id")
    assert (summary.input_rows, summary.scored, summary.errors) == (3 + 6 * len(TEXT_KINDS), 2 + 6 * len(TEXT_KINDS), 1)
    got = pd.read_parquet(out)
    assert sorted(got["id"]) == sorted(["a", "c", *(f"{kind}-{i}" for kind in TEXT_KINDS for i in range(6))])
    (bad,) = pd.read_parquet(out / "_errors").to_dict("records")
    assert bad["line"] == 3 and bad["reason"].startswith("a field of this record (lines 3 to ")


def _ray_cli(args, env_address=None, timeout=300):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    if env_address:
        env["RAY_ADDRESS"] = env_address
    return subprocess.run([*IMDB_DEPLOY, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def test_ray_keeps_its_own_tracebacks_off_stderr_unless_v(local_ray, onnx_dir, tmp_path):
    """A bad row with --on-error fail: stderr is our one line, with a Ray of its own (-q) or a cluster it joins
    (a Parquet null, no -q); -v gives Ray's own report (its tracebacks) back, still ending in our line."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"text": "a good film"}) + "\n" + json.dumps({"text": " "}) + "\n")
    table = pa.table({"text": pa.array(["fine", None, "dull"], pa.large_string())})
    pq.write_table(table, tmp_path / "in.parquet")
    expected = {
        source: f"Error: {source}, line 2: field 'text' is empty; remove the row or give it a review",
        tmp_path / "in.parquet": f"Error: {tmp_path / 'in.parquet'}, row 2: column 'text' is null, not a string",
    }
    base = ["--engine", "ray", "--actors", "1", "--variant", "fp32", "--on-error", "fail"]
    for given, flags, address in (
        (source, ["-q"], None),  # a Ray of its own, as in the report: ~160 lines before the fix
        (tmp_path / "in.parquet", [], local_ray),
    ):
        done = _ray_cli(["predict", given, "-m", onnx_dir, "-o", tmp_path / "out", *base, *flags], address)
        assert done.returncode == 1, done.stderr[-3000:]
        assert len(done.stderr.splitlines()) == 1, done.stderr[-5000:]
        assert done.stderr.startswith(expected[given]) and "Traceback" not in done.stderr
        assert not (tmp_path / "out").exists()
    done = _ray_cli(["predict", source, "-m", onnx_dir, "-o", tmp_path / "out", *base, "-v"], local_ray)
    assert done.returncode == 1 and "Traceback" in done.stderr, done.stderr[-3000:]
    assert done.stderr.splitlines()[-1].startswith(expected[source])
    usage = run_cli(["predict", source, "-m", onnx_dir, "-v"])
    assert usage.exit_code == 2 and "--verbose applies to --engine ray" in usage.output


def test_a_ray_driver_killed_outright_leaves_only_what_the_next_run_removes(local_ray, onnx_dir, tmp_path):
    """SIGKILL of the driver mid-job: its shards folder beside the output and its scratch folder (the actors'
    model copies) in the temp folder are named with its host and process id, and the next run removes both."""
    import glob
    import signal
    import tempfile
    import time

    texts, _ = toy_reviews(40_000, seed=5, min_words=20, max_words=60)
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"RAY_ADDRESS": local_ray}
    args = [*IMDB_DEPLOY, "predict", str(source), "-m", str(onnx_dir), "-o", str(tmp_path / "out"), "-q"]
    proc = subprocess.Popen(
        [*args, "--engine", "ray", "--actors", "1", "--variant", "fp32", "--chunk-size", "64"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    partial = str(tmp_path / f".out.imdb-*-{proc.pid}-*.partial")
    scratch = os.path.join(tempfile.gettempdir(), f".imdb-deploy-job-*.imdb-*-{proc.pid}-work.partial")
    deadline = time.monotonic() + 240
    while not (glob.glob(partial) and glob.glob(os.path.join(scratch, "imdb-deploy-model-*"))):
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the job wrote no shard folder in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    left = glob.glob(partial) + glob.glob(scratch)
    assert len(left) == 2, left  # what the killed driver left, each named for its host and process

    small = write_jsonl(tmp_path / "small.jsonl", reviews(3))
    summary = _run_ray(onnx_dir, [small], tmp_path / "next")
    assert summary.scored == 3
    assert [path for path in left if os.path.exists(path)] == []
    assert not (tmp_path / "out").exists()


def test_a_ray_cluster_that_cannot_be_joined_is_one_line_naming_the_address(monkeypatch, tmp_path):
    """RAY_ADDRESS or --address naming a head that is gone or refuses us (a stale address, a token cluster):
    ray.init's ConnectionError and its traceback became one line naming the address and the fix."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    from imdb_deploy.engines import cluster
    from imdb_deploy.errors import ConfigError

    def refuse(**kwargs):
        raise ConnectionError(f"Failed to connect to Ray cluster at {kwargs.get('address')}")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setenv("RAY_ADDRESS", "10.9.8.7:6379")
    with pytest.raises(ConfigError) as caught:
        cluster.connect()
    message = str(caught.value)
    assert message.startswith("RAY_ADDRESS=10.9.8.7:6379: cannot join that Ray cluster (Failed to connect")
    assert "unset RAY_ADDRESS" in message and "\n" not in message
    with pytest.raises(ConfigError, match=r"^ray://head:10001: cannot join"):
        cluster.connect("ray://head:10001")
