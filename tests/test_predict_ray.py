"""`imdb-deploy predict --engine ray`: a real local Ray (2 CPUs, started once for the module), real actors."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from conftest import toy_reviews

from imdb_deploy.errors import ConfigError, InputError

ray = pytest.importorskip("ray", reason="the ray extra is not installed (scripts/setup.sh installs it)")

SKIP_HINT = "(or pass --on-error skip --errors FILE to score the other rows and set bad ones aside)"


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray for every test here (start-up costs seconds); predict_ray joins it and leaves it running."""
    from imdb_deploy.engines.cluster import connect

    os.environ.pop("RAY_ADDRESS", None)
    assert connect(num_cpus=2, quiet=True)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def predictor(tiny_onnx_dir):
    from imdb_deploy.runtimes.predictor import Predictor

    return Predictor(tiny_onnx_dir, variant="fp32")


def run(onnx_dir, inputs, output, **options):
    from imdb_deploy.engines.config import RayPredictConfig
    from imdb_deploy.engines.ray import predict_ray

    config = RayPredictConfig(variant="fp32", progress=False, **options)
    return predict_ray(onnx_dir, inputs, output, config)


def read_output(folder) -> pd.DataFrame:
    return pd.read_parquet(folder).sort_values("id", key=lambda ids: ids.astype(str)).reset_index(drop=True)


def leftovers(parent) -> list[str]:
    return sorted(name for name in os.listdir(parent) if name.startswith("."))


def test_parquet_shards_match_predictor_ids_labels_and_probabilities(tiny_onnx_dir, predictor, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    texts, _ = toy_reviews(90, seed=11, min_words=1, max_words=70)
    shards = [texts[:40], texts[40:70], texts[70:]]
    for i, part in enumerate(shards):
        pd.DataFrame({"text": part}).to_parquet(data / f"train-{i:05d}.parquet")
    (data / "_SUCCESS").write_text("")  # a marker from an earlier job: skipped, as Spark and pyarrow do
    out = tmp_path / "out"

    summary = run(tiny_onnx_dir, [str(data)], out, actors=(2, 2), chunk_size=16)

    assert (summary.files, summary.input_rows, summary.scored, summary.errors) == (3, 90, 90, 0)
    assert sum(entry["rows"] for entry in summary.actors.values()) == 90
    assert {name for name in os.listdir(out) if not name.startswith("part-")} == {"_SUCCESS"}
    marker = json.loads((out / "_SUCCESS").read_text())
    assert (marker["input_rows"], marker["scored"], marker["errors"]) == (90, 90, 0)
    assert leftovers(tmp_path) == []

    got = pd.read_parquet(out)
    assert list(got.columns) == ["id", "label", "score", "prob_negative", "prob_positive"]
    expected_ids = [f"train-{i:05d}.parquet:{row}" for i, part in enumerate(shards) for row in range(1, len(part) + 1)]
    got = got.set_index("id").loc[expected_ids]  # every id once; rows come back in no particular order
    assert len(set(got.index)) == 90
    proba = predictor.predict_proba(texts)
    assert got["label"].tolist() == [("negative", "positive")[k] for k in proba.argmax(axis=1)]
    np.testing.assert_allclose(got[["prob_negative", "prob_positive"]].to_numpy(), proba, atol=1e-5)
    np.testing.assert_allclose(got["score"].to_numpy(), proba.max(axis=1), atol=1e-5)


def test_bad_rows_skipped_to_the_errors_folder_and_counted(tiny_onnx_dir, predictor, tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    (data / "a.jsonl").write_text('{"id": 1, "text": "great film"}\n{"id": 2, "text": 5}\nnot json\n')
    (data / "b.csv").write_text("review_id,text\nr1,awful plot\nr2,\n")
    pd.DataFrame({"id": [7, 8], "text": ["dull", None]}).to_parquet(data / "c.parquet")
    out = tmp_path / "out"

    summary = run(tiny_onnx_dir, [str(data / "*")], out, on_error="skip")

    assert (summary.input_rows, summary.scored, summary.errors) == (7, 3, 4)
    errors = pd.read_parquet(out / "_errors").sort_values(["file", "line"]).to_dict("records")
    assert errors == [
        {
            "file": str(data / "a.jsonl"),
            "line": 2,
            "id": "2",
            "reason": "field 'text' is a number, not a string",
            "fix": "give the review as text",
        },
        {
            "file": str(data / "a.jsonl"),
            "line": 3,
            "id": "a.jsonl:3",
            "reason": "not valid JSON (Expecting value at column 1)",
            "fix": "fix or remove the line",
        },
        {
            "file": str(data / "b.csv"),
            "line": 3,
            "id": "b.csv:3",
            "reason": "column 'text' is empty",
            "fix": "remove the row or give it a review",
        },
        {
            "file": str(data / "c.parquet"),
            "line": 2,
            "id": "8",
            "reason": "column 'text' is null, not a string",
            "fix": "give the review as text",
        },
    ]
    got = read_output(out)  # ids: JSONL numbers become text (one id type per output), CSV has no id column
    assert got["id"].tolist() == ["1", "7", "b.csv:2"]
    proba = predictor.predict_proba(["great film", "dull", "awful plot"])
    assert got["label"].tolist() == [("negative", "positive")[k] for k in proba.argmax(axis=1)]
    np.testing.assert_allclose(got["prob_positive"].to_numpy(), proba[:, 1], atol=1e-5)


def test_first_bad_row_fails_the_job_naming_file_and_line_and_leaves_nothing(tiny_onnx_dir, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "fine"}\n{"text": "fine too"}\n{"body": "x"}\n')
    out = tmp_path / "out"
    with pytest.raises(InputError) as caught:
        run(tiny_onnx_dir, [str(source)], out)
    assert str(caught.value) == (
        f"{source}, line 3: field 'text' missing (fields here: 'body'); use --text-field to name another field "
        f"{SKIP_HINT}"
    )
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl"]  # no output, no temporary folder


def test_missing_column_is_a_clear_error(tiny_onnx_dir, tmp_path):
    source = tmp_path / "reviews.parquet"
    pd.DataFrame({"review": ["fine"]}).to_parquet(source)
    with pytest.raises(InputError, match=r"no column 'text' \(columns: 'review'\); use --text-field"):
        run(tiny_onnx_dir, [str(source)], tmp_path / "out", on_error="skip")
    assert sorted(os.listdir(tmp_path)) == ["reviews.parquet"]


def test_empty_input_gives_an_empty_complete_output(tiny_onnx_dir, tmp_path):
    source = tmp_path / "empty.jsonl"
    source.write_text("")
    out = tmp_path / "out"
    summary = run(tiny_onnx_dir, [f"file://{source}"], out)  # file:// URLs work like paths
    assert (summary.input_rows, summary.scored, summary.errors) == (0, 0, 0)
    assert sorted(os.listdir(out)) == ["_SUCCESS", "part-00000.parquet"]
    assert list(pd.read_parquet(out).columns) == ["id", "label", "score", "prob_negative", "prob_positive"]


def test_inputs_that_match_nothing_fail_before_ray_runs(tiny_onnx_dir, tmp_path):
    with pytest.raises(InputError, match=r"the pattern matches no file"):
        run(tiny_onnx_dir, [str(tmp_path / "*.parquet")], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no readable file in this folder"):
        run(tiny_onnx_dir, [str(tmp_path / "empty")], tmp_path / "out")
    with pytest.raises(InputError, match=r"reads files, folders or URLs"):
        run(tiny_onnx_dir, ["-"], tmp_path / "out")


def test_existing_output_is_kept_unless_overwrite(tiny_onnx_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    from imdb_deploy.errors import OutputError

    (tmp_path / "in.txt").write_text("a fine film\n")
    with pytest.raises(OutputError, match=r"already exists; choose another output or pass --overwrite"):
        run(tiny_onnx_dir, [str(tmp_path / "in.txt")], out)
    with pytest.raises(OutputError, match=r"holds the input .*keep.txt'; writing there could destroy the input"):
        run(tiny_onnx_dir, [str(out / "keep.txt")], out)  # named first: --overwrite would not help
    assert os.listdir(out) == ["keep.txt"]


def test_actors_option_parsing():
    from imdb_deploy.engines.config import RayPredictConfig, parse_actors

    assert parse_actors("3") == (3, 3)
    assert parse_actors("1,8") == (1, 8)
    for bad in ("0", "4,2", "x", "1,2,3"):
        with pytest.raises(ConfigError, match=rf"actors={bad!r}: use N"):
            parse_actors(bad)
    with pytest.raises(ConfigError, match=r"cpus_per_actor=0"):
        RayPredictConfig(cpus_per_actor=0)


def test_cli_engine_ray_writes_the_folder_and_reports_counts(tiny_onnx_dir, tmp_path):
    from click.testing import CliRunner

    from imdb_deploy.cli import cli

    source = tmp_path / "reviews.csv"
    source.write_text("id,text\na,great film\nb,awful plot\n")
    out = tmp_path / "out"
    args = ["predict", str(source), "-m", str(tiny_onnx_dir), "--engine", "ray", "-o", str(out), "--actors", "1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "1 file: 2 input rows = 2 scored + 0 errors;" in result.stderr
    assert sorted(pd.read_parquet(out)["id"]) == ["a", "b"]

    usage = CliRunner().invoke(cli, [*args[:-4], "--engine", "ray"])
    assert usage.exit_code == 2
    assert "--engine ray needs --output FOLDER" in usage.stderr


def test_overwrite_never_replaces_an_input_or_the_model(tiny_onnx_dir, tmp_path):
    import re

    from imdb_deploy.errors import OutputError

    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl").write_text('{"text": "great film"}\n')
    for output, relation, source in (
        (data, "holds", data / "a.jsonl"),
        (tmp_path, "holds", data / "a.jsonl"),
        (data / "out", "is inside", data),
    ):
        with pytest.raises(OutputError, match=re.escape(f"--output '{output}' {relation} the input '{source}'")):
            run(tiny_onnx_dir, [str(data)], output, overwrite=True)
    with pytest.raises(OutputError, match=r"is inside the model folder"):
        run(tiny_onnx_dir, [str(data)], f"file://{tiny_onnx_dir}/out", overwrite=True)
    assert os.listdir(data) == ["a.jsonl"]


def test_a_full_disk_while_the_shards_are_written_is_one_line_and_keeps_the_old_output(
    tiny_onnx_dir, tmp_path, monkeypatch
):
    """A real ENOSPC in the write task: the job's temporary folder is made ahead with its shard names linked to
    /dev/full (every write there fails with "No space left on device")."""
    import imdb_deploy.engines.ray as predict_ray
    from imdb_deploy.errors import OutputError

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": f"r{i}", "text": t}) + "\n" for i, t in enumerate(toy_reviews(20)[0])))
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.parquet").write_text("the previous run")
    from imdb_deploy.fileio import work_dir_name

    monkeypatch.setattr(predict_ray, "_job_id", lambda: "01234567")
    partial = work_dir_name(out, "01234567")  # .out.imdb-HOST-PID-01234567.partial
    partial.mkdir()
    for task in range(4):
        (partial / f"part-{task:05d}.parquet").symlink_to("/dev/full")
    with pytest.raises(OutputError) as caught:
        run(tiny_onnx_dir, [str(source)], out, overwrite=True, actors=(1, 1))
    message = str(caught.value)
    assert message.startswith(f"{out}: cannot write it: No space left on device (the disk or your quota is full)")
    assert "\n" not in message and "Traceback" not in message
    assert os.listdir(out) == ["old.parquet"] and leftovers(tmp_path) == []


def test_struct_ids_with_a_bad_row_and_repeated_ids_are_counted(tiny_onnx_dir, tmp_path):
    """A struct id column's bad row goes to _errors/ as the id's JSON text (Arrow has no struct -> string cast);
    a repeated id is counted in the summary, and --on-duplicate-id fail refuses the output."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from imdb_deploy.errors import OutputError

    source = tmp_path / "in.parquet"
    ids = pa.array([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, {"a": 1, "b": "x"}, {"a": 3, "b": "z"}])
    pq.write_table(pa.table({"id": ids, "text": ["good film", "", "bad film", "fine"]}), source)
    summary = run(tiny_onnx_dir, [str(source)], tmp_path / "out", on_error="skip", actors=(1, 1))
    assert (summary.input_rows, summary.scored, summary.errors) == (4, 3, 1)
    assert (summary.repeated_ids, summary.null_ids) == (1, 0)
    assert summary.describe().endswith(
        "; 1 repeated id (the output cannot be joined back by id; --on-duplicate-id fail refuses this)"
    )
    errors = pd.read_parquet(tmp_path / "out" / "_errors")
    assert errors["id"].tolist() == ['{"a": 2, "b": "y"}']
    with pytest.raises(OutputError, match=r"^1 repeated id among the rows scored \(--on-duplicate-id fail\)"):
        run(tiny_onnx_dir, [str(source)], tmp_path / "out2", on_error="skip", on_duplicate_id="fail", actors=(1, 1))
    assert not (tmp_path / "out2").exists() and leftovers(tmp_path) == []
