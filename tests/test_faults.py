"""The hostile-input and fault suite (issue 16): nothing lost, nothing run that is not ours, nothing left behind.

Every case ends in exit 0 with complete output, or exit 1 with one line naming the place and the fix; no
traceback; input rows = output rows + error rows. Signals are sent to real subprocesses.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
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

from imdb_deploy.errors import ConfigError, ImdbDeployError, InputError, OutputError


def strict_json_lines(path: Path) -> list[dict]:
    """Parse JSONL refusing NaN/Infinity (which Python's json accepts by default)."""

    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".imdb-" in p.name or p.name.endswith((".tmp", ".partial")))


@pytest.fixture(scope="module")
def onnx_dir(tiny_onnx_dir):
    return tiny_onnx_dir


@pytest.fixture
def onnx_copy(onnx_dir, tmp_path):
    """A private copy of the tiny exported folder, to damage (a damaged file no longer matches its recorded
    checksum: a test of what comes after that check passes --allow-unverified)."""
    folder = tmp_path / "onnx-copy"
    shutil.copytree(onnx_dir, folder)
    return folder


def reviews(n: int, seed: int = 11) -> list[dict]:
    texts, _ = toy_reviews(n, seed=seed)
    return [{"id": f"r{i}", "text": text} for i, text in enumerate(texts)]


# --- 1. foreign code -------------------------------------------------------------------------------------


def _ask_for_custom_code(folder: Path, file_name: str, marker: Path) -> None:
    """Make `folder` ask transformers to import evil.py (which would write `marker`) via auto_map."""
    (folder / "evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('foreign code ran')\n"
        "from transformers import DistilBertConfig, DistilBertTokenizerFast\n"
        "class EvilTokenizer(DistilBertTokenizerFast):\n    pass\n"
        "class EvilConfig(DistilBertConfig):\n    model_type = 'evil'\n"
    )
    data = json.loads((folder / file_name).read_text())
    if file_name == "tokenizer_config.json":
        data["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", "evil.EvilTokenizer"]}
        data["tokenizer_class"] = "EvilTokenizer"
    else:
        data["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForSequenceClassification": "evil.Evil"}
        data["model_type"] = "evil"
    (folder / file_name).write_text(json.dumps(data))


@pytest.mark.parametrize("file_name", ["tokenizer_config.json", "config.json"])
def test_predict_from_stdin_never_runs_code_from_the_model_folder(onnx_copy, tmp_path, file_name):
    marker = tmp_path / "ran.txt"
    _ask_for_custom_code(onnx_copy, file_name, marker)
    stdin = "y\n" + "".join(json.dumps(row) + "\n" for row in reviews(3))  # "y" would answer the prompt
    result = run_cli(["predict", "-", "-m", onnx_copy, "-q"], input=stdin)
    line = one_line_error(result)
    assert line == (
        f"Error: {onnx_copy / file_name}: asks to run Python code shipped in the model folder (auto_map: "
        f"{', '.join(json.loads((onnx_copy / file_name).read_text())['auto_map'])}); imdb-deploy never runs code "
        "from a model folder. Use a model with a built-in architecture (e.g. DistilBERT), or remove auto_map if "
        "the folder does not need its own code"
    )
    assert not marker.exists()


@pytest.mark.parametrize("file_name", ["tokenizer_config.json", "config.json"])
def test_evaluate_and_export_refuse_custom_code(tiny_classifier_dir, toy_data_dir, tmp_path, file_name):
    folder = tmp_path / "classifier"
    shutil.copytree(tiny_classifier_dir, folder)
    marker = tmp_path / "ran.txt"
    _ask_for_custom_code(folder, file_name, marker)
    for args in (
        ["evaluate", folder, "--data", toy_data_dir, "-q"],
        ["export", folder, "-o", tmp_path / "onnx", "--no-verify", "-q"],
        ["train", "--model", folder, "--data", toy_data_dir, "-o", tmp_path / "trained", "-q"],
    ):
        line = one_line_error(run_cli(args, input="y\ny\n"))
        assert f"{folder / file_name}: asks to run Python code shipped in the model folder" in line
    assert not marker.exists()
    assert not (tmp_path / "onnx").exists() and not (tmp_path / "trained").exists()


def test_every_transformers_load_refuses_remote_code():
    """Static guard: each Auto*/main_export load in the package passes trust_remote_code=False."""
    import re

    package = Path(__file__).resolve().parents[1] / "imdb_deploy"
    calls = 0
    for path in package.rglob("*.py"):
        text = path.read_text()
        for match in re.finditer(r"(Auto\w+\.from_pretrained|main_export)\(", text):
            depth, end = 0, match.end() - 1
            for end in range(match.end() - 1, len(text)):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            call = text[match.start() : end + 1]
            assert "trust_remote_code=False" in call, f"{path.name}: {call[:80]}"
            calls += 1
    assert calls >= 4


# --- 2 and 4. outputs that would destroy an input ---------------------------------------------------------


def test_train_overwrite_refuses_the_base_model_as_output(tiny_model_dir, toy_data_dir, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    before = sorted(p.name for p in base.iterdir())
    line = one_line_error(
        run_cli(["train", "--model", base, "--data", toy_data_dir, "--output", base, "--overwrite", "-q"])
    )
    assert line == (
        f"Error: --output {str(base)!r} is the base model {str(base)!r}; writing there could destroy the input. "
        "Choose an output outside it"
    )
    assert sorted(p.name for p in base.iterdir()) == before


@pytest.mark.parametrize("where", ["parent", "inside", "symlink"])
def test_train_output_may_not_hold_or_sit_inside_an_input(tiny_model_dir, toy_data_dir, tmp_path, where):
    data = tmp_path / "work" / "data"
    shutil.copytree(toy_data_dir, data)
    output = {"parent": tmp_path / "work", "inside": data / "model", "symlink": tmp_path / "link"}[where]
    if where == "symlink":
        output.symlink_to(data)
    line = one_line_error(
        run_cli(["train", "--model", tiny_model_dir, "--data", data, "--output", output, "--overwrite", "-q"])
    )
    relation = {"parent": "holds", "inside": "is inside", "symlink": "is"}[where]
    assert f"--output {str(output)!r} {relation} the --data source {str(data)!r}" in line
    assert sorted(p.name for p in data.iterdir()) == ["test.parquet", "train.parquet"]


def test_train_overwrite_with_bad_data_keeps_the_previous_model(tiny_model_dir, tmp_path):
    previous = tmp_path / "model"
    previous.mkdir()
    (previous / "train_config.json").write_text("{}")
    line = one_line_error(
        run_cli(["train", "--model", tiny_model_dir, "--data", tmp_path / "nowhere", "-o", previous, "--overwrite"])
    )
    assert "nowhere" in line
    assert (previous / "train_config.json").read_text() == "{}"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("output", [".", "..", "HOME"])
def test_train_overwrite_refuses_the_working_and_home_folder(
    tiny_model_dir, toy_data_dir, tmp_path, monkeypatch, output
):  # noqa: E501
    home = tmp_path / "home"
    work = home / "project"
    work.mkdir(parents=True)
    (work / "precious.txt").write_text("keep me")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    output = str(home) if output == "HOME" else output
    line = one_line_error(
        run_cli(["train", "--model", tiny_model_dir, "--data", toy_data_dir, "--output", output, "--overwrite", "-q"])
    )
    why, resolved = {
        ".": ("the current working folder", work),
        "..": ("a parent of the current working folder", home),
        str(home): ("a parent of the current working folder", home),
    }[output]
    assert line == (
        f"Error: --output {output!r} is {why} ({resolved}); replacing it would delete everything in it. "
        "Choose a new folder for the output"
    )
    assert (work / "precious.txt").read_text() == "keep me"


def test_train_overwrite_replaces_the_old_folder_only_when_complete(
    tiny_model_dir, toy_data_dir, tmp_path, monkeypatch
):
    from imdb_deploy.training.config import TrainConfig
    from imdb_deploy.training.train import train

    out = tmp_path / "model"
    out.mkdir()
    (out / "old.txt").write_text("old run")
    options = dict(model=str(tiny_model_dir), data=str(toy_data_dir), output_dir=str(out), epochs=1)
    options.update(max_train_samples=32, max_eval_samples=16, max_length=32, checkpoint_every=1)
    with monkeypatch.context() as patch, pytest.raises(Interrupted):
        interrupt_at_step(patch, 2)  # stopped mid-run, after the checkpoint at step 1
        train(TrainConfig(**options), overwrite=True, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]  # untouched until a new model is complete

    args = ["train", "--model", tiny_model_dir, "--data", toy_data_dir, "-o", out, "--overwrite", "-q"]
    args += ["--epochs", "1", "--max-train-samples", "32", "--max-eval-samples", "16", "--max-length", "32"]
    result = run_cli(args)
    assert result.exit_code == 0, result.output
    assert (out / "train_config.json").is_file() and not (out / "old.txt").exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["parent", "inside"])
def test_export_refuses_an_output_that_holds_or_sits_inside_the_model(tiny_classifier_dir, tmp_path, where):
    parent = tmp_path / "runs"
    model = parent / "model"
    shutil.copytree(tiny_classifier_dir, model)
    output = parent if where == "parent" else model / "onnx"
    line = one_line_error(run_cli(["export", model, "-o", output, "--overwrite", "--no-verify", "-q"]))
    relation = "holds" if where == "parent" else "is inside"
    assert line == (
        f"Error: --output {str(output)!r} {relation} the model folder {str(model)!r}; writing there could destroy "
        "the input. Choose an output outside it"
    )
    assert (model / "model.safetensors").is_file() and not (model / "onnx").exists()


def test_a_folder_output_raises_the_package_error_for_an_existing_folder(tmp_path):
    from imdb_deploy.outputs import Output

    (tmp_path / "out").mkdir()
    with pytest.raises(OutputError, match="already exists; choose another output or pass --overwrite"):
        Output(tmp_path / "out", folder=True)
    assert issubclass(OutputError, ImdbDeployError) and not issubclass(OutputError, FileExistsError)


# --- 3. predict must not overwrite its input ---------------------------------------------------------------


@pytest.mark.parametrize("case", ["output=input", "errors=input", "errors=output", "symlink", "hardlink"])
def test_predict_refuses_outputs_that_are_an_input(onnx_dir, tmp_path, case):
    source = write_jsonl(tmp_path / "in.jsonl", reviews(5))
    original = source.read_bytes()
    other = tmp_path / "out.jsonl"
    args = ["predict", source, "-m", onnx_dir, "-q", "--on-error", "skip"]
    if case == "output=input":
        args += ["-o", source]
        expected = f"--output {str(source)!r} is the input {str(source)!r}"
    elif case == "errors=input":
        args += ["-o", other, "--errors", source]
        expected = f"--errors {str(source)!r} is the input {str(source)!r}"
    elif case == "errors=output":
        args += ["-o", other, "--errors", other]
        expected = f"--errors {str(other)!r} is the --output file {str(other)!r}"
    else:
        alias = tmp_path / "alias.jsonl"
        (alias.symlink_to if case == "symlink" else alias.hardlink_to)(source)
        args += ["-o", alias]
        expected = f"--output {str(alias)!r} is the input {str(source)!r}"
    line = one_line_error(run_cli(args))
    assert line == f"Error: {expected}; writing there could destroy the input. Choose an output outside it"
    assert source.read_bytes() == original and not other.exists()


def test_predict_refuses_an_output_inside_the_model_folder(onnx_copy, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", reviews(3))
    target = onnx_copy / "onnx" / "model_quantized.onnx"
    before = target.read_bytes()
    line = one_line_error(run_cli(["predict", source, "-m", onnx_copy, "-o", target, "-q"]))
    assert f"--output {str(target)!r} is inside the model folder {str(onnx_copy)!r}" in line
    assert target.read_bytes() == before


# --- 5. CSV quoting ---------------------------------------------------------------------------------------


def _csv_with_unclosed_quote(path: Path, n: int, bad_row: int) -> list[str]:
    texts, _ = toy_reviews(n, seed=5)
    lines = ["id,text"]
    for i, text in enumerate(texts):
        lines.append(f'{i},"{text} and then' if i == bad_row else f'{i},"{text}"')
    path.write_text("\n".join(lines) + "\n")
    return texts


def test_an_unclosed_csv_quote_is_one_bad_row_not_the_rest_of_the_file(onnx_dir, tmp_path):
    source = tmp_path / "in.csv"
    _csv_with_unclosed_quote(source, 1000, bad_row=2)
    out, errors = tmp_path / "out.jsonl", tmp_path / "bad.jsonl"
    args = ["predict", source, "-m", onnx_dir, "--id-field", "id", "--on-error", "skip", "--errors", errors]
    result = run_cli([*args, "-o", out, "-q"])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("1,000 input rows = 999 scored + 1 error;")
    ids = [row["id"] for row in strict_json_lines(out)]
    assert ids == [str(i) for i in range(1000) if i != 2]
    (bad,) = strict_json_lines(errors)
    assert bad["line"] == 4
    # the next row's opening quote closes the stray one, and the CSV breaks right after it
    assert bad["reason"] == (
        "a quote opened in this row runs on to line 5, where the CSV breaks (',' expected after '\"')"
    )

    line = one_line_error(run_cli(["predict", source, "-m", onnx_dir, "--id-field", "id", "-o", out, "-q"]))
    assert line.startswith(f"Error: {source}, line 4: a quote opened in this row runs on to line 5")


def test_a_quote_never_closed_to_the_end_of_the_file_is_one_bad_row(onnx_dir, tmp_path):
    source = tmp_path / "in.csv"
    rows = ["1,good film", '2,"dull and then', "3,great film", "4,awful"]
    source.write_text("id,text\n" + "\n".join(rows) + "\n")
    result = run_cli(["predict", source, "-m", onnx_dir, "--id-field", "id", "--on-error", "skip", "-q"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["1", "3", "4"]
    first, summary = result.stderr.splitlines()
    assert first == (
        f"skipped {source}, line 3: a quote opened in this row is never closed (the field runs to the end of the input)"
    )
    assert summary.startswith("4 input rows = 3 scored + 1 error;")


def test_csv_field_over_the_cap_is_a_bad_row_and_reading_goes_on(onnx_dir, tmp_path, monkeypatch):
    import imdb_deploy.rows.readers as inputs

    monkeypatch.setattr(inputs, "MAX_LINE_BYTES", 2000)
    source = tmp_path / "in.csv"
    body = "".join(f"{i},good film number {i}\n" for i in range(3, 403))  # 400 rows, about 9 KB
    source.write_text('id,text\n1,fine film\n2,"a quote never closed\n' + body)
    result = run_cli(["predict", source, "-m", onnx_dir, "--id-field", "id", "--on-error", "skip", "-q"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["1", *map(str, range(3, 403))]
    first, summary = result.stderr.splitlines()
    assert first == f"skipped {source}, line 3: a field is over the limit of 2,000 bytes (a quote never closed?)"
    assert summary.startswith("402 input rows = 401 scored + 1 error;")


# --- 6 and 7. JSON depth, review size, memory flat in the length of a line ---------------------------------


def test_deeply_nested_json_is_a_bad_row(onnx_dir, tmp_path):
    from imdb_deploy.jsonlimits import MAX_JSON_DEPTH

    deep = '{"text": "x", "meta": ' + "[" * 100_000 + "]" * 100_000 + "}"
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(reviews(1)[0]) + "\n" + deep + "\n" + json.dumps(reviews(1)[0]) + "\n")
    result = run_cli(["predict", source, "-m", onnx_dir, "--on-error", "skip", "-q"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2
    assert f"skipped {source}, line 2: JSON nested deeper than {MAX_JSON_DEPTH} levels" in result.stderr
    line = one_line_error(run_cli(["predict", source, "-m", onnx_dir, "-q"]))
    assert line.startswith(f"Error: {source}, line 2: JSON nested deeper than {MAX_JSON_DEPTH} levels; flatten")


def test_review_and_line_caps_are_bad_rows_in_every_format(onnx_dir, tmp_path, monkeypatch):
    import imdb_deploy.reviews as reviews
    import imdb_deploy.rows.readers as inputs

    monkeypatch.setattr(reviews, "MAX_REVIEW_BYTES", 1000)
    monkeypatch.setattr(inputs, "MAX_LINE_BYTES", 4000)
    long_review, huge_line = "great " * 300, "bad " * 2000  # 1,800 bytes; 8,000 bytes
    cases = {
        "in.txt": f"fine film\n{long_review}\n{huge_line}\nawful\n",
        "in.jsonl": "".join(json.dumps({"text": t}) + "\n" for t in ("fine film", long_review, huge_line, "awful")),
    }
    for name, content in cases.items():
        source = tmp_path / name
        source.write_text(content)
        result = run_cli(["predict", source, "-m", onnx_dir, "--on-error", "skip", "-q"])
        assert result.exit_code == 0, result.output
        assert len(result.stdout.splitlines()) == 2
        assert "4 input rows = 2 scored + 2 errors" in result.stderr
        assert "1,800 bytes, over the limit of 1,000 bytes" in result.stderr
        assert "over the limit of 4,000 bytes per line" in result.stderr


def test_validate_review_is_the_check_a_server_can_call():
    from imdb_deploy.jsonlimits import MAX_JSON_DEPTH, loads_checked
    from imdb_deploy.reviews import MAX_REVIEW_BYTES, validate_review

    assert validate_review("A fine film.") == "A fine film."
    for bad, message in (
        ("", "the review is empty"),
        (7, "the review is a number, not a string"),
        ("é" * (MAX_REVIEW_BYTES // 2 + 1), f"over the limit of {MAX_REVIEW_BYTES:,} bytes"),
    ):
        with pytest.raises(InputError, match=message):
            validate_review(bad)
    with pytest.raises(InputError, match=f"nested deeper than {MAX_JSON_DEPTH}"):
        loads_checked("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
    assert loads_checked('{"texts": ["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]}') == {
        "texts": ["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]
    }


_RSS_SCRIPT = """
import json, resource, sys
from imdb_deploy import Predictor
from imdb_deploy.engines.config import PredictFileConfig
from imdb_deploy.engines.local import predict_file

predictor = Predictor(sys.argv[1], variant="fp32")
config = PredictFileConfig(on_error="skip", progress=False)
predict_file(predictor, sys.argv[2], output=sys.argv[4], config=config, stderr=open("/dev/null", "w"))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
summary = predict_file(predictor, sys.argv[3], output=sys.argv[4], config=config, stderr=open("/dev/null", "w"))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": summary.input_rows, "errors": summary.errors, "growth_mb": (after - before) / 1024}))
"""


def test_a_50_mb_line_is_a_bad_row_and_memory_stays_flat(onnx_dir, tmp_path):
    small = write_jsonl(tmp_path / "small.jsonl", reviews(20))
    big = tmp_path / "big.jsonl"
    with big.open("w") as handle:
        handle.write(json.dumps(reviews(1)[0]) + "\n")
        handle.write('{"text": "' + "great movie " * (50 * 2**20 // 12) + '"}\n')  # 50 MB
        handle.write(json.dumps(reviews(1)[0]) + "\n")
    done = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(onnx_dir), str(small), str(big), str(tmp_path / "out.jsonl")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["rows"], report["errors"]) == (3, 1)
    assert report["growth_mb"] < 40, report  # the line is read in 1 MiB pieces, never whole


# --- 8. one-line messages instead of tracebacks -----------------------------------------------------------


def test_disk_full_while_writing_predictions_is_one_line_and_leaves_nothing(onnx_dir, tmp_path):
    """A real EFBIG: the file size limit stands in for a full disk (ENOSPC takes the same path)."""
    import resource

    source = write_jsonl(tmp_path / "in.jsonl", reviews(300))
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    done = subprocess.run(
        [*IMDB_DEPLOY, "predict", str(source), "-m", str(onnx_dir), "-o", str(out_dir / "p.jsonl"), "-q"],
        capture_output=True,
        text=True,
        preexec_fn=small_files,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        f"Error: {out_dir / 'p.jsonl'}: cannot write it: File too large (the disk or your quota is full); free "
        "some space or write the output elsewhere. Nothing was replaced."
    ]
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_read_only_output_folder_is_one_line(onnx_dir, tmp_path, monkeypatch, code):
    import tempfile

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code), kwargs.get("dir"))

    source = write_jsonl(tmp_path / "in.jsonl", reviews(3))
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    out = tmp_path / "ro" / "p.jsonl"
    line = one_line_error(run_cli(["predict", source, "-m", onnx_dir, "-o", out, "-q"]))
    assert line == (
        f"Error: {out}: cannot write it: {os.strerror(code)} ({out.parent}); choose a writable output location"
    )


def test_export_on_a_full_disk_blames_the_disk_not_the_model(tiny_classifier_dir, tmp_path, monkeypatch):
    import torch.onnx

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch.onnx, "export", full)  # the default install's exporter (imdb_deploy.export.exporters)
    out = tmp_path / "onnx"
    line = one_line_error(run_cli(["export", tiny_classifier_dir, "-o", out, "--no-verify", "-q"]))
    assert "No space left on device" in line and "free some space" in line
    assert "DistilBERT-style" not in line
    assert not out.exists() and leftovers(tmp_path) == []


def test_model_folder_without_tokenizer_files_is_one_line(onnx_copy, tmp_path):
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (onnx_copy / name).unlink(missing_ok=True)
    source = write_jsonl(tmp_path / "in.jsonl", reviews(3))
    line = one_line_error(run_cli(["predict", source, "-m", onnx_copy, "-q", "--allow-unverified"]))
    assert line.startswith(f"Error: Tokenizer {str(onnx_copy)!r} could not be loaded")
    assert line.endswith(
        "the folder needs its tokenizer files (tokenizer.json, or vocab.txt with tokenizer_config.json): copy them "
        "from the base model"
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_length", "64", "max_length='64': use a whole number from 8 to 512"),
        ("truncation", 3, "truncation=3: use one of head, head+tail"),
        ("head_tokens", 2.5, "head_tokens=2.5: use a whole number"),
        ("label_names", "np", "label_names='np': use a list of names"),
        ("label_names", ["pos", 1], "label_names=['pos', 1]: use two or more different, non-empty names"),
    ],
)
def test_wrong_types_in_train_config_are_one_line(onnx_copy, tmp_path, field, value, message):
    path = onnx_copy / "train_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), field: value}))
    source = write_jsonl(tmp_path / "in.jsonl", reviews(3))
    line = one_line_error(run_cli(["predict", source, "-m", onnx_copy, "-q", "--allow-unverified"]))
    assert line.startswith(f"Error: {path}: {message}")


def test_closed_stdin_is_one_line(onnx_dir):
    done = subprocess.run(
        ["bash", "-c", 'exec "$@" <&-', "_", *IMDB_DEPLOY, "predict", "-", "-m", str(onnx_dir), "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "Error: stdin is closed: pipe the reviews in (`... | imdb-deploy predict -`) or name a file"
    ]


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pickle-ran",))


def test_resume_refuses_a_checkpoint_pickle_that_would_run_code(tiny_model_dir, toy_data_dir, tmp_path, monkeypatch):
    import pickle

    from imdb_deploy.training.config import TrainConfig
    from imdb_deploy.training.train import train

    options, checkpoint = checkpointed_run(tiny_model_dir, toy_data_dir, tmp_path, monkeypatch)
    (checkpoint / "optimizer.bin").write_bytes(pickle.dumps({"state": _Evil()}))
    with pytest.raises(ConfigError) as caught:
        train(TrainConfig(**options), resume=True, progress=False)
    assert str(caught.value).startswith(f"--resume: checkpoint {checkpoint} could not be loaded (")
    assert str(caught.value).endswith(
        f"it is damaged or holds more than tensors. Delete {tmp_path / 'run' / 'checkpoints'} and train again "
        "without --resume"
    )
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "pickle-ran").exists()


# --- 9. label names ---------------------------------------------------------------------------------------


def test_label_names_contradicting_config_id2label_are_refused(onnx_copy, tmp_path):
    path = onnx_copy / "train_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "label_names": ["positive", "negative"]}))
    source = write_jsonl(tmp_path / "in.jsonl", reviews(3))
    line = one_line_error(run_cli(["predict", source, "-m", onnx_copy, "-q", "--allow-unverified"]))
    assert line == (
        f"Error: {path}: label_names ['positive', 'negative'] contradict config.json's id2label "
        "['negative', 'positive'] (label id i must have the same name in both); correct label_names, or "
        "re-create the folder with the stage that wrote it"
    )


def test_evaluate_checks_label_names_too(tiny_classifier_dir, toy_data_dir, tmp_path):
    folder = tmp_path / "classifier"
    shutil.copytree(tiny_classifier_dir, folder)
    path = folder / "train_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "label_names": ["positive", "negative"]}))
    line = one_line_error(run_cli(["evaluate", folder, "--data", toy_data_dir, "-q"]))
    assert "contradict config.json's id2label" in line


# --- 10. JSON output is always valid JSON ------------------------------------------------------------------


def test_non_finite_ids_are_bad_rows_and_output_stays_valid_json(onnx_dir, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"id": 1, "text": "good film"}\n{"id": NaN, "text": "bad film"}\n{"id": Infinity, "text": "dull"}\n'
        '{"id": 1e999, "text": "great"}\n{"id": [-Infinity], "text": "awful"}\n{"id": "NaN", "text": "fine"}\n'
    )
    out, errors = tmp_path / "out.jsonl", tmp_path / "bad.jsonl"
    result = run_cli(
        ["predict", source, "-m", onnx_dir, "--id-field", "id", "--on-error", "skip", "--errors", errors, "-o", out]
    )
    assert result.exit_code == 0, result.output
    assert [row["id"] for row in strict_json_lines(out)] == [1, "NaN"]
    bad = strict_json_lines(errors)
    assert [row["line"] for row in bad] == [2, 3, 4, 5]
    assert bad[0]["reason"] == "field 'id' is nan, which is not a valid JSON number"
    line = one_line_error(run_cli(["predict", source, "-m", onnx_dir, "--id-field", "id", "-q"]))
    assert line.startswith(f"Error: {source}, line 2: field 'id' is nan, which is not a valid JSON number;")


def test_json_artifacts_never_hold_nan(tmp_path):
    from imdb_deploy.fileio import json_text, write_json_atomic

    write_json_atomic(tmp_path / "m.json", {"loss": float("nan"), "f1": [1.0, float("inf")], "n": 3})
    assert json.loads((tmp_path / "m.json").read_text()) == {"loss": None, "f1": [1.0, None], "n": 3}
    assert json_text({"x": float("-inf")}, indent=None) == '{"x": null}'


# --- 11. leftovers: SIGTERM cleans up like SIGINT; a completed run removes a killed run's temp files -------


def _wait_for(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def _sigint_as_in_a_terminal() -> None:
    """A shell that starts a job in the background (`cmd &`) leaves SIGINT ignored for it and its children, and
    Python keeps an inherited SIG_IGN (no KeyboardInterrupt): give the run the SIGINT a terminal user has."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_predict_on_open_stdin(onnx_dir: Path, out: Path) -> subprocess.Popen:
    """A predict run reading stdin that stays open: it holds its temporary output until stopped."""
    proc = subprocess.Popen(
        [*IMDB_DEPLOY, "predict", "-", "-m", str(onnx_dir), "-o", str(out), "-q"],
        preexec_fn=_sigint_as_in_a_terminal,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdin.write(b"".join(json.dumps(row).encode() + b"\n" for row in reviews(5)))
    proc.stdin.flush()
    _wait_for(lambda: [p for p in out.parent.iterdir() if p.name.endswith(".tmp")])
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_cleans_up_like_sigint(onnx_dir, tmp_path, sig):
    out = tmp_path / "out" / "p.jsonl"
    out.parent.mkdir()
    proc = _start_predict_on_open_stdin(onnx_dir, out)
    proc.send_signal(sig)
    try:
        # stdin stays open until the run has ended, so only the signal can end it (communicate() would close
        # stdin at once, and a run that saw end of input first would finish normally: a race, not a bug).
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr
    assert stderr.decode().splitlines()[-1] == "Aborted!"
    assert list(out.parent.iterdir()) == []


def test_sigterm_during_export_leaves_no_partial_folder(tiny_classifier_dir, tmp_path):
    out = tmp_path / "exports" / "onnx"
    proc = subprocess.Popen(
        [*IMDB_DEPLOY, "export", str(tiny_classifier_dir), "-o", str(out), "--quantize", "--no-verify", "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _wait_for(lambda: out.parent.is_dir() and [p for p in out.parent.iterdir() if p.name.endswith(".partial")])
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0, stderr
    assert list(out.parent.iterdir()) == []


def test_sigterm_during_train_overwrite_keeps_the_old_folder_and_leaves_no_work_folder(
    tiny_model_dir, toy_data_dir, tmp_path
):
    out = tmp_path / "runs" / "model"
    out.mkdir(parents=True)
    (out / "old.txt").write_text("old run")
    proc = subprocess.Popen(
        [*IMDB_DEPLOY, "train", "--model", str(tiny_model_dir), "--data", str(toy_data_dir), "-o", str(out)]
        + ["--overwrite", "-q", "--epochs", "50", "--max-length", "32", "--checkpoint-every", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _wait_for(lambda: [p for p in out.parent.iterdir() if p.name.endswith(".partial")])
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    assert stderr.decode().splitlines()[-1] == "Aborted!"
    assert sorted(p.name for p in out.parent.iterdir()) == ["model"]
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]


def test_a_closed_stdout_is_one_line(onnx_dir, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", reviews(4000))
    proc = subprocess.Popen(
        [*IMDB_DEPLOY, "predict", str(source), "-m", str(onnx_dir), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert json.loads(proc.stdout.readline())["id"] == "r0"  # a reader that stops after one row, like `head -1`
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert stderr.splitlines() == [
        "Error: stdout was closed before all output was written (the reader of the pipe stopped early); write to "
        "a file with --output to keep every row"
    ]


def test_a_killed_runs_leftovers_are_removed_by_the_next_run_that_completes(onnx_dir, tmp_path):
    out = tmp_path / "out" / "p.jsonl"
    out.parent.mkdir()
    proc = _start_predict_on_open_stdin(onnx_dir, out)
    proc.kill()
    proc.wait(timeout=30)
    stale = leftovers(out.parent)
    assert len(stale) == 1 and stale[0].startswith(".p.jsonl.imdb-") and f"-{proc.pid}-" in stale[0]
    tag = stale[0].removeprefix(".p.jsonl.").split(f"-{proc.pid}-")[0]  # imdb-HOST
    (out.parent / f".onnx.{tag}-{proc.pid}-abc.partial").mkdir()  # as a killed export leaves it
    alive = out.parent / f".other.jsonl.{tag}-{os.getpid()}-xyz.tmp"  # a run still in progress: kept
    alive.write_text("")
    other_host = out.parent / f".x.jsonl.imdb-elsewhere-{proc.pid}-xyz.tmp"  # another host's pid: not judged
    other_host.write_text("")
    source = write_jsonl(tmp_path / "in.jsonl", reviews(4))
    result = run_cli(["predict", source, "-m", onnx_dir, "-o", out, "-q"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.parent.iterdir()) == sorted([alive.name, other_host.name, "p.jsonl"])


# --- 12. umask --------------------------------------------------------------------------------------------


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


def test_outputs_honour_the_umask(onnx_dir, tiny_classifier_dir, tmp_path, umask_027):
    from imdb_deploy.export.config import ExportConfig
    from imdb_deploy.export.stage import export
    from imdb_deploy.fileio import write_json_atomic
    from imdb_deploy.outputs import Output

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    source = write_jsonl(tmp_path / "in.jsonl", reviews(3))
    result = run_cli(["predict", source, "-m", onnx_dir, "-o", tmp_path / "p.jsonl", "-q"])
    assert result.exit_code == 0, result.output
    assert mode(tmp_path / "p.jsonl") == 0o640
    assert mode(write_json_atomic(tmp_path / "r.json", {"a": 1})) == 0o640
    with Output(tmp_path / "d", folder=True).writing() as tmp:
        (tmp / "f").write_text("x")
    assert mode(tmp_path / "d") == 0o750 and mode(tmp_path / "d" / "f") == 0o640
    folder = tmp_path / "onnx"
    export(tiny_classifier_dir, folder, ExportConfig(verify=False))
    assert mode(folder) == 0o750
    assert {mode(p) for p in folder.rglob("*") if p.is_file()} == {0o640}
    assert {mode(p) for p in folder.rglob("*") if p.is_dir()} == {0o750}  # onnx/


# --- 13. resume keeps the epoch's whole training loss -----------------------------------------------------


def test_resumed_run_reports_the_train_loss_of_the_whole_epoch(tiny_model_dir, toy_data_dir, tmp_path, monkeypatch):
    from imdb_deploy.training.config import TrainConfig
    from imdb_deploy.training.train import train

    options = dict(model=str(tiny_model_dir), data=str(toy_data_dir), epochs=1, batch_size=16, lr=1e-2, seed=7)
    options.update(max_length=32, val_size=0, max_train_samples=96, max_eval_samples=16, checkpoint_every=2)
    straight = train(TrainConfig(**options, output_dir=str(tmp_path / "a")), progress=False)
    interrupted = TrainConfig(**options, output_dir=str(tmp_path / "b"))
    with monkeypatch.context() as patch, pytest.raises(Interrupted):
        interrupt_at_step(patch, 4)  # checkpoint at step 2, stopped at 4 of 6: resumed mid-epoch
        train(interrupted, progress=False)
    resumed = train(interrupted, resume=True, progress=False)
    metrics = [json.loads((folder / "metrics.json").read_text()) for folder in (straight, resumed)]
    loss = [m["epochs"][0]["train_loss"] for m in metrics]
    assert loss[1] == pytest.approx(loss[0], rel=1e-5)


# --- rows in = rows out + error rows, for a mixed hostile file --------------------------------------------


def test_rows_in_equal_rows_out_plus_errors_for_a_hostile_mix(onnx_dir, tmp_path):
    lines = [json.dumps(row) for row in reviews(30)]
    lines[3] = '{"text": "x", "deep": ' + "[" * 500 + "]" * 500 + "}"
    lines[7] = '{"id": NaN, "text": "bad"}'
    lines[11] = "not json"
    lines[15] = '{"text": ""}'
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    out, errors = tmp_path / "out.jsonl", tmp_path / "bad.jsonl"
    args = ["predict", source, "-m", onnx_dir, "--id-field", "id", "--on-error", "skip", "--errors", errors, "-o", out]
    result = run_cli([*args, "-q"])
    assert result.exit_code == 0, result.output
    assert len(strict_json_lines(out)) == 26
    assert [row["line"] for row in strict_json_lines(errors)] == [4, 8, 12, 16]
    assert result.stderr.startswith("30 input rows = 26 scored + 4 errors;")


# --- issue 25: one output guard for both engines ----------------------------------------------------------


def _no_scoring(monkeypatch):
    """Scoring fails loudly: a refusal that comes from the guard came before any work."""
    from imdb_deploy.runtimes.predictor import Predictor

    def refuse(*args, **kwargs):
        raise AssertionError("scored before the output was checked")

    monkeypatch.setattr(Predictor, "predict_proba", refuse)


def test_output_guard_refuses_fifos_devices_and_folders_before_any_work(onnx_dir, tmp_path, monkeypatch):
    _no_scoring(monkeypatch)
    source = write_jsonl(tmp_path / "in.jsonl", reviews(3))
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    base = ["predict", source, "-m", onnx_dir, "-q"]
    for args, expected in (
        (["-o", fifo], f"--output {str(fifo)!r} is a FIFO (named pipe)"),
        (["-o", "/dev/null"], "--output '/dev/null' is under /dev/, where a file is renamed over a device or link"),
        (["-o", "/dev/stdout"], "--output '/dev/stdout' is under /dev/"),
        (["--on-error", "skip", "--errors", "/dev/stderr"], "--errors '/dev/stderr' is under /dev/"),
        (["-o", "/proc/self/fd/1"], "--output '/proc/self/fd/1' is under /"),
        (["--on-error", "skip", "--errors", fifo], f"--errors {str(fifo)!r} is a FIFO (named pipe)"),
        (["-o", folder], f"--output {str(folder)!r} is a folder; name a file for the output, e.g. {folder}/"),
        (["-o", "."], "--output '.' is a folder"),
    ):
        line = one_line_error(run_cli([*base, *args]))
        assert line.startswith(f"Error: {expected}"), line
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert os.path.islink("/dev/stdout") or not os.path.exists("/dev/stdout")
    assert os.listdir(folder) == [] and sorted(os.listdir(tmp_path)) == ["folder", "in.jsonl", "pipe"]


def test_ray_engine_never_replaces_the_working_home_or_an_input_folder(onnx_dir, tmp_path, monkeypatch):
    """The guard runs before Ray starts (no cluster needed): --overwrite never reaches a protected folder."""
    work, home, data = tmp_path / "work", tmp_path / "home", tmp_path / "data"
    for folder in (work, home, data):
        (folder / "src").mkdir(parents=True)
        (folder / "notes.txt").write_text("keep me")
    source = write_jsonl(data / "in.jsonl", reviews(3))
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    base = ["predict", source, "-m", onnx_dir, "--engine", "ray", "-q"]
    for output, expected in (
        (str(work), f"--output {str(work)!r} is the current working folder"),
        (".", "--output '.' is the current working folder"),
        # A parent of the working folder that also holds the input: the input, the more specific loss, is named.
        (str(tmp_path), f"--output {str(tmp_path)!r} holds the input {str(source)!r}"),
        (str(home), f"--output {str(home)!r} is your home folder"),
        (str(data), f"--output {str(data)!r} holds the input {str(source)!r}"),
    ):
        line = one_line_error(run_cli([*base, "-o", output, "--overwrite"]))
        assert line.startswith(f"Error: {expected}"), line
    line = one_line_error(run_cli([*base, "-o", work]))  # without --overwrite: exists, one line
    assert line == f"Error: {work} already exists; choose another output or pass --overwrite"
    for folder in (work, home, data):
        assert sorted(os.listdir(folder)) == sorted(["src", "notes.txt", *(["in.jsonl"] if folder == data else [])])
    assert sorted(os.listdir(tmp_path)) == ["data", "home", "work"]  # nothing renamed away beside them


# --- issue 25: ids kept exactly as written; repeated and null ids counted ----------------------------------


def test_jsonl_number_ids_keep_their_literal_text_in_every_output(onnx_dir, tmp_path):
    huge = "7" * 5000  # past Python's 4,300-digit limit for int()
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"id": 1.0000000000000000001, "text": "good film"}\n{"id": 1.0, "text": "bad film"}\n'
        f'{{"id": {huge}, "text": "fine"}}\n{{"id": 3, "text": "dull", "meta": {huge}}}\n'
        '{"id": 2.50, "text": ""}\n{"id": 1e2, "text": "great"}\n'
    )
    out, errors, csv_out = tmp_path / "out.jsonl", tmp_path / "bad.jsonl", tmp_path / "out.csv"
    args = ["predict", source, "-m", onnx_dir, "--on-error", "skip", "-q"]
    result = run_cli([*args, "-o", out, "--errors", errors])
    assert result.exit_code == 0, result.output
    literal = [line.split(",", 1)[0].removeprefix('{"id": ') for line in out.read_text().splitlines()]
    assert literal == ["1.0000000000000000001", "1.0", huge, "3", "1e2"]
    assert errors.read_text().splitlines()[0].startswith(f'{{"file": "{source}", "line": 5, "id": 2.50, ')
    assert result.stderr.startswith("6 input rows = 5 scored + 1 error;") and "repeated" not in result.stderr
    result = run_cli([*args, "-o", csv_out, "--format", "csv"])
    assert result.exit_code == 0, result.output
    cells = [line.split(",", 1)[0] for line in csv_out.read_text().splitlines()[1:]]
    assert cells == ["1.0000000000000000001", "1.0", huge, "3", "1e2"]


def test_a_too_long_integer_is_a_bad_value_for_the_plain_json_parse():
    from imdb_deploy.jsonlimits import loads_checked, parse_json

    value, reason, fix = parse_json('{"label": ' + "1" * 4301 + "}")
    assert value is None and reason.startswith("a number too long to read (Exceeds the limit (4300 digits)")
    with pytest.raises(InputError, match=r"a number too long to read .*; quote it, or shorten it"):
        loads_checked("[" + "9" * 5000 + "]")


def test_repeated_and_null_ids_are_counted_and_on_duplicate_id_fail_refuses(onnx_dir, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"id": 10, "text": "good film"}\n{"id": "10", "text": "a string id, another id"}\n'
        '{"id": 10, "text": "bad film"}\n{"id": null, "text": "fine"}\n{"id": 10, "text": "dull"}\n'
    )
    out = tmp_path / "out.jsonl"
    result = run_cli(["predict", source, "-m", onnx_dir, "-q", "-o", out])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 5
    assert result.stderr.splitlines()[0].endswith(
        "; 2 repeated ids and 1 null id (the output cannot be joined back by id; --on-duplicate-id fail refuses this)"
    )
    out.unlink()
    line = one_line_error(run_cli(["predict", source, "-m", onnx_dir, "-q", "-o", out, "--on-duplicate-id", "fail"]))
    assert line.startswith("Error: 2 repeated ids and 1 null id among the rows scored (--on-duplicate-id fail)")
    assert not out.exists() and leftovers(tmp_path) == []


def test_parquet_id_columns_of_any_type_go_through_the_one_id_encoder(onnx_dir, tmp_path):
    import datetime
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = ["good film", "bad film"]
    columns = {
        "binary": (pa.array([b"\x00\xff", b"ok"], pa.binary()), ["00ff", "6f6b"]),
        "timestamp": (
            pa.array([datetime.datetime(2024, 5, 1, 12, 30), datetime.datetime(2024, 5, 2)], pa.timestamp("us")),
            ["2024-05-01T12:30:00", "2024-05-02T00:00:00"],
        ),
        "date": (pa.array([datetime.date(2024, 5, 1), datetime.date(1999, 12, 31)]), ["2024-05-01", "1999-12-31"]),
        "decimal": (pa.array([decimal.Decimal("1.10"), decimal.Decimal("-3.00")], pa.decimal128(5, 2)), [1.1, -3.0]),
        "struct": (pa.array([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]), [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]),
    }
    for kind, (ids, expected) in columns.items():
        source = tmp_path / f"{kind}.parquet"
        pq.write_table(pa.table({"id": ids, "text": texts}), source)
        out, csv_out = tmp_path / f"{kind}.jsonl", tmp_path / f"{kind}.csv"
        result = run_cli(["predict", source, "-m", onnx_dir, "-q", "-o", out])
        assert result.exit_code == 0, (kind, result.output)
        assert [row["id"] for row in strict_json_lines(out)] == expected, kind
        result = run_cli(["predict", source, "-m", onnx_dir, "-q", "-o", csv_out, "--format", "csv"])
        assert result.exit_code == 0, (kind, result.output)
        cells = [line.split(",")[0] for line in csv_out.read_text().splitlines()[1:]]
        assert "b'" not in csv_out.read_text() and len(cells) == 2, kind
    assert (tmp_path / "decimal.jsonl").read_text().startswith('{"id": 1.10, ')  # the decimal's literal


# --- issue 25: memory flat in the number of blank lines --------------------------------------------------

_BLANK_LINES_SCRIPT = """
import contextlib, json, resource, sys
from imdb_deploy.rows.readers import open_reader
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # a reader that keeps the lines fails fast here
report = {}
for path, fmt in json.loads(sys.argv[1]):
    with contextlib.ExitStack() as stack:
        reader = open_reader(path, stack, fmt)
        rows = [(row.line, row.text) for row in reader]
    report[f"{path.rsplit('/', 1)[-1]}:{fmt}"] = [rows, reader.blank_lines]
# VmHWM: this process's own peak (ru_maxrss would carry the forking test process's peak across exec)
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
report["peak_mb"] = int(status["VmHWM"].split()[0]) / 1024
print(json.dumps(report))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the peak RSS from Linux's /proc")
def test_memory_stays_flat_in_the_blank_lines_before_the_first_row_in_every_reader(tmp_path):
    """A 50 KB gzip of 50 MB of newlines, then one row: every reader skips them in bulk (the auto format's
    first-line peek once kept every blank line: 5 MB of newlines cost 530 MB)."""
    import gzip

    blank = 50 << 20
    cases = []
    for name, last, formats in (
        ("in.gz", '{"text": "good film"}', ("auto", "jsonl", "text")),
        ("in.csv.gz", "text\ngood film", ("auto", "csv")),
    ):
        path = tmp_path / name
        path.write_bytes(gzip.compress(b"\n" * blank + last.encode() + b"\n", 9))
        assert path.stat().st_size < 100_000
        cases += [(str(path), fmt) for fmt in formats]
    done = subprocess.run(
        [sys.executable, "-c", _BLANK_LINES_SCRIPT, json.dumps(cases)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report.pop("peak_mb") < 400, report  # the interpreter, NumPy and pyarrow; flat in the blank lines
    row = blank + 1
    assert report == {
        "in.gz:auto": [[[row, "good film"]], blank],
        "in.gz:jsonl": [[[row, "good film"]], blank],
        "in.gz:text": [[[row, '{"text": "good film"}']], blank],
        "in.csv.gz:auto": [[[row + 1, "good film"]], blank],
        "in.csv.gz:csv": [[[row + 1, "good film"]], blank],
    }


# --- issue 25: one-line errors where a traceback was; reviews empty once normalised ------------------------


def test_a_lone_surrogate_in_a_jsonl_review_is_a_bad_row(onnx_dir, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "good film"}\n{"text": "\\ud800 dull"}\n{"text": "bad film \\udfff"}\n')
    result = run_cli(["predict", source, "-m", onnx_dir, "--on-error", "skip", "-q"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1
    assert result.stderr.splitlines()[:2] == [
        f"skipped {source}, line 2: field 'text' holds a lone surrogate (\\ud800 at character 1), which is not "
        "valid Unicode",
        f"skipped {source}, line 3: field 'text' holds a lone surrogate (\\udfff at character 10), which is not "
        "valid Unicode",
    ]
    line = one_line_error(run_cli(["predict", source, "-m", onnx_dir, "-q"]))
    assert line.startswith(f"Error: {source}, line 2: field 'text' holds a lone surrogate")
    ids = tmp_path / "ids.jsonl"
    ids.write_text(
        '{"id": "\\ud800", "text": "good film"}\n{"id": {"k": ["\\udc00"]}, "text": "bad"}\n{"id": 1, "text": "ok"}\n'
    )
    out = tmp_path / "out.jsonl"
    result = run_cli(["predict", ids, "-m", onnx_dir, "--on-error", "skip", "-q", "-o", out])
    assert result.exit_code == 0, result.output
    assert [row["id"] for row in strict_json_lines(out)] == [1]
    assert result.stderr.startswith(f"skipped {ids}, line 1: field 'id' holds a lone surrogate, which is not valid")
    from imdb_deploy.runtimes.predictor import Predictor

    with pytest.raises(InputError, match=r"texts\[0\]: the review holds a lone surrogate"):
        Predictor(onnx_dir).predict(["\ud800"])


def test_reviews_empty_once_control_and_zero_width_characters_are_dropped_are_bad_rows(onnx_dir, tmp_path):
    from imdb_deploy.reviews import review_problem

    invisible = ["\u200b", "\ufeff\u200b\u200d", "\x01\x02\x7f", "\u2060 \u00ad", "\u200e\t\u202e"]
    for text in invisible:
        assert review_problem(text)[0] == "the review is empty once its control and zero-width characters are dropped"
    for text in ("é", "日本", "\u200bok", "a"):
        assert review_problem(text) is None
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in ["good film", *invisible, "   "]])
    result = run_cli(["predict", source, "-m", onnx_dir, "--on-error", "skip", "-q"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1
    assert result.stderr.splitlines()[-1].startswith("7 input rows = 1 scored + 6 errors;")
    text_file = tmp_path / "in.txt"
    text_file.write_text("good film\n\u200b\u200b\n")
    line = one_line_error(run_cli(["predict", text_file, "-m", onnx_dir, "-q"]))
    assert line.startswith(f"Error: {text_file}, line 2: the review is empty once its control and zero-width")


def test_a_parquet_file_with_a_corrupt_data_page_is_one_line(onnx_dir, tmp_path):
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq

    words = random.Random(0).choices(["good", "bad", "film", "plot", "actor", "dull", "great"], k=60_000)
    texts = [" ".join(words[i : i + 30]) for i in range(0, 60_000, 30)]
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": texts}), source, compression="snappy", row_group_size=1000, use_dictionary=False)
    chunk = pq.ParquetFile(source).metadata.row_group(1).column(0)
    data = bytearray(source.read_bytes())
    middle = chunk.data_page_offset + chunk.total_compressed_size // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    source.write_bytes(bytes(data))
    out = tmp_path / "out.jsonl"
    for extra in ([], ["--on-error", "skip"]):
        line = one_line_error(run_cli(["predict", source, "-m", onnx_dir, "-q", "-o", out, *extra]))
        assert line.startswith(f"Error: {source}: cannot read it after row ")  # rows of the batches read before
        assert "(Corrupt snappy compressed data" in line
        assert line.endswith("the file is damaged: re-create or re-download it")
    assert not out.exists() and leftovers(tmp_path) == []


# --- issue 25: CSV delimiters and headers ----------------------------------------------------------------


def test_csv_delimiter_is_sniffed_from_the_header_or_named_with_a_hint_when_it_looks_wrong(onnx_dir, tmp_path):
    rows = [("a", "good film, really"), ("b", "bad film; truly")]
    for delimiter in (",", ";", "\t", "|"):
        source = tmp_path / "in.csv"
        source.write_text(f"id{delimiter}text\n" + "".join(f'{i}{delimiter}"{t}"\n' for i, t in rows), encoding="utf-8")
        result = run_cli(["predict", source, "-m", onnx_dir, "-q"])
        assert result.exit_code == 0, (delimiter, result.output)
        assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["a", "b"], delimiter
    source.write_text("id;text\na;good film\n")
    result = run_cli(["predict", source, "-m", onnx_dir, "-q", "--delimiter", ";"])
    assert result.exit_code == 0, result.output
    for named, spelled in ((",", "';'"), ("|", "';'")):
        line = one_line_error(run_cli(["predict", source, "-m", onnx_dir, "-q", "--delimiter", named]))
        assert line.endswith(
            f"use --text-field to name the column (the header looks {spelled}-separated: pass --delimiter {spelled})"
        ), line
    source.write_text("id\ttext\na\tgood film\n")
    line = one_line_error(run_cli(["predict", source, "-m", onnx_dir, "-q", "--delimiter", ","]))
    assert line.endswith("(the header looks tab-separated: pass --delimiter tab)")
    assert run_cli(["predict", source, "-m", onnx_dir, "-q", "--delimiter", "tab"]).exit_code == 0
    line = one_line_error(run_cli(["predict", source, "-m", onnx_dir, "-q", "--delimiter", "ab"]))
    assert line == "Error: delimiter='ab': use auto, tab or one character such as , ; |"


@pytest.mark.parametrize(("header", "column", "places"), [("text,text", "text", "1, 2"), ("id,text,id", "id", "1, 3")])
def test_a_csv_header_naming_a_column_twice_is_refused(onnx_dir, tmp_path, header, column, places):
    source = tmp_path / "in.csv"
    source.write_text(f"{header}\n" + ",".join(["x"] * header.count(",")) + ",good film\n")
    line = one_line_error(run_cli(["predict", source, "-m", onnx_dir, "-q"]))
    assert line == (
        f"Error: {source}, line 1: the CSV header names column {column!r} 2 times (columns {places}); rename all "
        "but one, so the right column is read"
    )


def test_a_csv_header_of_400k_columns_gives_a_short_error(onnx_dir, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text(",".join(f"c{i}" for i in range(400_000)) + "\n" + ",".join(["x"] * 400_000) + "\n")
    line = one_line_error(run_cli(["predict", source, "-m", onnx_dir, "-q"]))
    assert len(line) < 400, len(line)
    assert line.startswith(f"Error: {source}, line 1: no column 'text' in the CSV header (columns: 'c0', 'c1',")
    assert "... (400,000 in all)); use --text-field to name the column" in line


# --- issue 25: the Ray engine leaves no model copies, and -q is quiet -----------------------------------


def test_ray_engine_leaves_no_model_copy_in_the_temp_folder_and_q_prints_only_the_summary(onnx_copy, tmp_path):
    """A real `predict --engine ray -q` in its own process, with its own local Ray: its actors' copies of the
    model (found by a marker file shipped with it) are gone when it ends, and stderr holds only our two lines
    (not Ray's logging.cc announcement of its log level)."""
    pytest.importorskip("ray", reason="the ray extra is not installed")
    import glob
    import tempfile
    import uuid

    marker = f"marker-{uuid.uuid4().hex}.txt"
    (onnx_copy / marker).write_text("x")
    source = write_jsonl(tmp_path / "in.jsonl", reviews(4))
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [*IMDB_DEPLOY, "predict", str(source), "-m", str(onnx_copy), "--engine", "ray", "-o", str(out)]
        + ["--actors", "1", "--variant", "fp32", "-q"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stderr.splitlines()
    assert "logging.cc" not in done.stderr, done.stderr
    assert lines[-2].startswith("1 file: 4 input rows = 4 scored + 0 errors;"), done.stderr
    assert lines[-1] == f"wrote {out}"
    assert len(lines) == 2, done.stderr  # nothing else from Ray on stderr
    temp = tempfile.gettempdir()
    patterns = ("imdb-deploy-model-*", ".imdb-deploy-*", ".imdb-deploy-*/*")  # before the fix; after it
    left = [path for pattern in patterns for path in glob.glob(os.path.join(temp, pattern, marker))]
    assert left == [], done.stderr


def test_a_full_disk_behind_a_stdout_redirect_says_the_rows_before_it_were_written(onnx_dir, tmp_path):
    """A real EFBIG on stdout (the file size limit, as above): "Nothing was replaced" would be false here."""
    import resource

    source = write_jsonl(tmp_path / "in.jsonl", reviews(300))

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    with (tmp_path / "redirected.jsonl").open("w") as stdout:
        done = subprocess.run(
            [*IMDB_DEPLOY, "predict", str(source), "-m", str(onnx_dir), "-q"],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=small_files,
            timeout=120,
        )
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("Error: stdout: cannot write it: File too large (the disk or your quota is full) after ")
    assert line.endswith(
        "rows were passed to it, so what stdout leads to holds only part of the output: free some space and run "
        "again, or write with --output (complete or not at all)"
    )
    assert "Nothing was replaced" not in line and (tmp_path / "redirected.jsonl").stat().st_size == 4096
