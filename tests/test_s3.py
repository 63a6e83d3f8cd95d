"""s3:// input and output through s3fs, for both engines, against moto's S3 server on 127.0.0.1 (started here,
in a thread; no network). Credentials and endpoint come from the usual AWS environment variables."""

from __future__ import annotations

import json
import logging
import os

import pandas as pd
import pytest
from conftest import toy_reviews

from imdb_deploy.errors import InputError, OutputError

pytest.importorskip("s3fs", reason="s3fs is not installed (the s3 extra)")
moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (the dev extra)")

BUCKET = "reviews"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def fresh_s3():
    """An s3fs filesystem built from the environment now (fsspec caches instances, and with them credentials)."""
    import fsspec

    fsspec.get_filesystem_class("s3").clear_instance_cache()
    return fsspec.filesystem("s3")


@pytest.fixture(scope="module")
def s3():
    """moto's S3 server on 127.0.0.1 (a free port), the AWS variables pointing at it, and a bucket of reviews:
    in/ holds a Parquet file, a JSONL file, and a _SUCCESS marker and a .hidden file that listing skips."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    saved = {name: os.environ.get(name) for name in [*AWS_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(AWS_ENV, AWS_ENDPOINT_URL=f"http://{host}:{port}")
    fs = fresh_s3()
    fs.mkdir(BUCKET)
    texts, _ = toy_reviews(300, seed=7, min_words=1, max_words=50)
    local = {
        "a.parquet": _parquet_bytes(pd.DataFrame({"id": [f"p{i}" for i in range(200)], "text": texts[:200]})),
        "b.jsonl": "".join(json.dumps({"text": text}) + "\n" for text in texts[200:]).encode(),
        "_SUCCESS": b"",
        ".hidden.jsonl": b'{"text": "never read"}\n',
    }
    for name, data in local.items():
        fs.pipe(f"{BUCKET}/in/{name}", data)
    yield fs, local
    server.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    fresh_s3()


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


@pytest.fixture
def local_copy(s3, tmp_path):
    """The bucket's in/ folder as local files (same names), for the same job on local files."""
    _, files = s3
    folder = tmp_path / "in"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_local_engine_reads_and_writes_s3_exactly_as_local_files(s3, local_copy, tiny_onnx_dir, tmp_path):
    from click.testing import CliRunner

    from imdb_deploy.cli import cli

    fs, _ = s3
    base = ["-m", str(tiny_onnx_dir), "--variant", "fp32", "-q"]
    remote = CliRunner().invoke(cli, ["predict", f"s3://{BUCKET}/in", *base, "-o", f"s3://{BUCKET}/out/p.jsonl"])
    assert remote.exit_code == 0, remote.output
    assert "2 files: 300 input rows = 300 scored + 0 errors;" in remote.stderr
    on_disk = CliRunner().invoke(cli, ["predict", str(local_copy), *base, "-o", str(tmp_path / "p.jsonl")])
    assert on_disk.exit_code == 0, on_disk.output
    assert fs.cat(f"{BUCKET}/out/p.jsonl") == (tmp_path / "p.jsonl").read_bytes()
    assert json.loads(fs.cat(f"{BUCKET}/out/p.jsonl").splitlines()[0])["id"] == "p0"

    globbed = CliRunner().invoke(cli, ["predict", f"s3://{BUCKET}/in/*.jsonl", *base, "-o", str(tmp_path / "g.jsonl")])
    assert globbed.exit_code == 0, globbed.output
    assert len((tmp_path / "g.jsonl").read_text().splitlines()) == 100


def test_a_failed_local_run_leaves_no_object(s3, tiny_onnx_dir):
    from imdb_deploy.engines.config import PredictFileConfig
    from imdb_deploy.engines.local import predict_file
    from imdb_deploy.runtimes.predictor import Predictor

    fs, _ = s3
    fs.pipe(f"{BUCKET}/bad/x.jsonl", b'{"text": "fine"}\n{"body": "no text"}\n')
    with pytest.raises(InputError, match=r"x\.jsonl, line 2: field 'text' missing"):
        predict_file(
            Predictor(tiny_onnx_dir, variant="fp32"),
            [f"s3://{BUCKET}/bad/x.jsonl"],
            output=f"s3://{BUCKET}/bad-out/p.jsonl",
            config=PredictFileConfig(progress=False),
        )
    assert not fs.exists(f"{BUCKET}/bad-out/p.jsonl")
    assert fs.list_multipart_uploads(BUCKET) == []  # the upload was aborted, not left to bill


def test_missing_bucket_is_one_clear_line_for_inputs_and_outputs(s3, tiny_onnx_dir, local_copy):
    from click.testing import CliRunner

    from imdb_deploy.cli import cli
    from imdb_deploy.engines.config import RayPredictConfig
    from imdb_deploy.engines.ray import predict_ray

    base = ["-m", str(tiny_onnx_dir), "--variant", "fp32", "-q"]
    result = CliRunner().invoke(cli, ["predict", "s3://no-such-bucket/in/x.jsonl", *base])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: s3://no-such-bucket/in/x.jsonl: no bucket 'no-such-bucket'; check its name or create it\n"
    )
    result = CliRunner().invoke(cli, ["predict", str(local_copy), *base, "-o", "s3://no-such-bucket/p.jsonl"])
    assert result.exit_code == 1
    assert (
        result.stderr == "Error: s3://no-such-bucket/p.jsonl: no bucket 'no-such-bucket'; check its name or create it\n"
    )
    with pytest.raises(OutputError, match=r"^s3://no-such-bucket/out: no bucket 'no-such-bucket'"):  # before Ray
        predict_ray(tiny_onnx_dir, [str(local_copy)], "s3://no-such-bucket/out", RayPredictConfig(progress=False))


def test_denied_access_is_one_clear_line(s3, tiny_onnx_dir, local_copy, monkeypatch):
    import moto.settings
    from click.testing import CliRunner

    from imdb_deploy.cli import cli

    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # the server now checks credentials
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWN")
    fresh_s3()
    base = ["-m", str(tiny_onnx_dir), "--variant", "fp32", "-q"]
    result = CliRunner().invoke(cli, ["predict", f"s3://{BUCKET}/in", *base])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: s3://{BUCKET}/in: access denied (")
    assert result.stderr.endswith(
        "); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and the bucket's policy\n"
    )
    result = CliRunner().invoke(cli, ["predict", str(local_copy), *base, "-o", f"s3://{BUCKET}/denied.jsonl"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: s3://{BUCKET}/denied.jsonl: access denied (")
    monkeypatch.undo()
    fresh_s3()


def test_ray_engine_s3_round_trip_matches_the_same_job_on_local_files(s3, local_copy, tiny_onnx_dir, tmp_path):
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    from imdb_deploy.engines.cluster import connect
    from imdb_deploy.engines.config import RayPredictConfig
    from imdb_deploy.engines.ray import predict_ray

    fs, _ = s3
    os.environ.pop("RAY_ADDRESS", None)
    assert connect(num_cpus=2, quiet=True)  # started after the AWS variables are set: its workers inherit them
    try:
        config = RayPredictConfig(variant="fp32", progress=False, actors=(1, 1), chunk_size=64)
        remote = predict_ray(tiny_onnx_dir, [f"s3://{BUCKET}/in"], f"s3://{BUCKET}/ray-out", config)
        local = predict_ray(tiny_onnx_dir, [str(local_copy)], tmp_path / "ray-out", config)
    finally:
        ray.shutdown()

    assert (remote.files, remote.input_rows, remote.scored, remote.errors) == (2, 300, 300, 0)
    names = [path.rsplit("/", 1)[1] for path in fs.find(f"{BUCKET}/ray-out")]
    assert "_SUCCESS" in names and all(name.startswith("part-") for name in names if name != "_SUCCESS")
    assert not [path for path in fs.ls(BUCKET) if path.rsplit("/", 1)[1].startswith(".")]  # no temporary left
    marker = fs.info(f"{BUCKET}/ray-out/_SUCCESS")["LastModified"]
    assert all(fs.info(path)["LastModified"] <= marker for path in fs.find(f"{BUCKET}/ray-out"))  # written last
    assert json.loads(fs.cat(f"{BUCKET}/ray-out/_SUCCESS"))["scored"] == local.scored == 300

    got = pd.concat(
        pd.read_parquet(fs.open(path)) for path in fs.find(f"{BUCKET}/ray-out") if path.endswith(".parquet")
    )
    want = pd.read_parquet(tmp_path / "ray-out")
    got, want = (frame.sort_values("id").reset_index(drop=True) for frame in (got, want))
    pd.testing.assert_frame_equal(got, want)  # identical ids, labels and float32 probabilities
