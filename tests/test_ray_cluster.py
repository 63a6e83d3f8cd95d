"""`predict --engine ray` on a real multi-node Ray cluster (ray.cluster_utils.Cluster: a head and worker nodes,
each its own raylet and object store, on this machine), joined with --address, the model shipped to the
workers, and a worker node killed mid-job."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time

import numpy as np
import pandas as pd
import pytest
from conftest import toy_reviews

ray = pytest.importorskip("ray", reason="the ray extra is not installed (scripts/setup.sh installs it)")

NODE_MEMORY = 96 * 2**20  # object store per node: a few thousand reviews need little
JOB_TIMEOUT_S = 420  # Ray workers start slowly on 2 shared cores; bounded all the same


@pytest.fixture(scope="module")
def cluster():
    """A head that runs no work (0 CPUs: the driver's node) and two worker nodes of 1 CPU each. Dead nodes are
    noticed in ~5 s (Ray's default, ~30 s, would only slow the kill test)."""
    from ray.cluster_utils import Cluster

    os.environ.pop("RAY_ADDRESS", None)
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    head = {
        "num_cpus": 0,
        "include_dashboard": False,
        "object_store_memory": NODE_MEMORY,
        "_system_config": {"health_check_period_ms": 1000, "health_check_failure_threshold": 5},
    }
    cluster = Cluster(initialize_head=True, head_node_args=head)
    workers = [cluster.add_node(num_cpus=1, object_store_memory=NODE_MEMORY) for _ in range(2)]
    cluster.wait_for_nodes()
    yield cluster, workers
    if ray.is_initialized():
        ray.shutdown()
    cluster.shutdown()


def write_parts(folder, rows: int, parts: int, seed: int, parquet_every: int = 0):
    """`rows` toy reviews in `parts` equal files part-NN, JSONL, or Parquet for every `parquet_every`-th one."""
    texts, _ = toy_reviews(rows, seed=seed, min_words=1, max_words=60)
    size = rows // parts
    for i in range(parts):
        part = texts[i * size : (i + 1) * size]
        if parquet_every and i % parquet_every == 0:
            pd.DataFrame({"text": part}).to_parquet(folder / f"part-{i:02d}.parquet")
        else:
            (folder / f"part-{i:02d}.jsonl").write_text("".join(json.dumps({"text": text}) + "\n" for text in part))
    return folder


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    """1,200 toy reviews in four files, two Parquet and two JSONL (ids are FILE:LINE)."""
    return write_parts(tmp_path_factory.mktemp("cluster-data"), 1200, 4, seed=26, parquet_every=2)


def local_engine(model, data, tmp_path) -> pd.DataFrame:
    """The same job with the local engine (default variant: INT8, one review per call, batch-invariant)."""
    from imdb_deploy.engines.config import PredictFileConfig
    from imdb_deploy.engines.local import predict_file
    from imdb_deploy.runtimes.predictor import Predictor

    out = tmp_path / "local.jsonl"
    predict_file(Predictor(model), [str(data)], output=out, config=PredictFileConfig(progress=False))
    return pd.read_json(out, lines=True, dtype={"id": str}).set_index("id")


def assert_same_rows(folder, expected: pd.DataFrame) -> None:
    got = pd.read_parquet(folder)
    assert got["id"].is_unique and len(got) == len(expected)  # every id once
    got = got.set_index("id").loc[expected.index]
    assert got["label"].tolist() == expected["label"].tolist()
    probs = ["prob_negative", "prob_positive"]  # local JSONL rounds to 6 decimals; Ray keeps float32
    np.testing.assert_allclose(got[probs].to_numpy(), expected[probs].to_numpy(), atol=1e-6)


def test_cli_joins_the_cluster_ships_the_model_and_scores_on_both_nodes(
    cluster, reviews, tiny_onnx_dir, tmp_path, monkeypatch
):
    from click.testing import CliRunner

    import imdb_deploy.engines.ray as predict_ray
    from imdb_deploy.cli import cli

    cluster, workers = cluster
    model = tmp_path / "model"
    shutil.copytree(tiny_onnx_dir, model)
    expected = local_engine(model, reviews, tmp_path)
    real_pack = predict_ray.pack_model

    def pack_then_hide(folder, variant):
        """Once packed, the driver's folder is gone: a worker can only have the model from the object store."""
        files = real_pack(folder, variant)
        os.rename(folder, tmp_path / "hidden")
        return files

    monkeypatch.setattr(predict_ray, "pack_model", pack_then_hide)
    out = tmp_path / "out"
    args = ["predict", str(reviews), "-m", str(model), "--engine", "ray", "-o", str(out), "-q"]
    args += ["--address", cluster.address, "--ship-model", "--actors", "2", "--chunk-size", "32"]
    result = CliRunner().invoke(cli, args)

    assert result.exit_code == 0, result.output
    assert not model.exists()
    assert "4 files: 1,200 input rows = 1,200 scored + 0 errors;" in result.stderr
    assert " on 2 nodes (" in result.stderr
    marker = json.loads((out / "_SUCCESS").read_text())
    assert (marker["input_rows"], marker["scored"], marker["errors"]) == (1200, 1200, 0)
    assert set(marker["nodes"]) == {worker.node_id for worker in workers}  # the head (0 CPUs) scored nothing
    assert all(node["rows"] > 0 and node["actors"] == 1 for node in marker["nodes"].values())
    assert sum(node["rows"] for node in marker["nodes"].values()) == 1200
    assert_same_rows(out, expected)


def test_a_worker_node_killed_mid_job_loses_no_row(cluster, reviews, tiny_onnx_dir, tmp_path):
    from imdb_deploy.engines.cluster import RayJobError
    from imdb_deploy.engines.config import RayPredictConfig
    from imdb_deploy.engines.ray import predict_ray

    cluster, _ = cluster
    victim = cluster.add_node(num_cpus=1, object_store_memory=NODE_MEMORY)
    cluster.wait_for_nodes()
    expected = local_engine(tiny_onnx_dir, reviews, tmp_path)
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    out = tmp_path / "out"
    config = RayPredictConfig(address=cluster.address, actors=(3, 3), chunk_size=8, progress=False)
    result: dict = {}

    def job():
        try:
            result["summary"] = predict_ray(tiny_onnx_dir, [str(reviews)], out, config)
        except Exception as exc:  # noqa: BLE001 (the test reads it below)
            result["error"] = exc

    thread = threading.Thread(target=job, daemon=True)
    thread.start()
    killed_at = None
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while thread.is_alive() and killed_at is None and time.monotonic() < deadline:
        rows = _rows_on(victim.node_id)
        if rows is not None and rows[0] > 0:  # the victim has scored: the job is under way on it
            killed_at = rows
            cluster.remove_node(victim, allow_graceful=False)
        time.sleep(0.05)
    thread.join(timeout=max(1.0, deadline - time.monotonic()))
    ray.shutdown()

    assert not thread.is_alive(), f"the job did not end within {JOB_TIMEOUT_S} s"
    assert killed_at is not None and killed_at[1] < 1200, f"the victim was not killed mid-job ({killed_at})"
    if "error" in result:  # the other acceptable outcome: a clear message and nothing written
        assert isinstance(result["error"], RayJobError), result["error"]
        assert "nothing was written" in str(result["error"])
        assert sorted(os.listdir(tmp_path)) == ["local.jsonl"]
        return
    summary = result["summary"]
    assert (summary.input_rows, summary.scored, summary.errors) == (1200, 1200, 0)
    assert summary.nodes[victim.node_id]["rows"] > 0
    assert_same_rows(out, expected)
    assert sorted(os.listdir(tmp_path)) == ["local.jsonl", "out"]


def _rows_on(node: str) -> tuple[int, int] | None:
    """(rows scored on `node`, rows scored in all) so far, from the running job's ledger; None before it exists."""
    ledgers = [entry for entry in ray.util.list_named_actors(all_namespaces=True) if "ledger" in entry["name"]]
    if not ledgers:
        return None
    try:
        ledger = ray.get_actor(ledgers[0]["name"], namespace=ledgers[0]["namespace"])
        _, actors = ray.get(ledger.report.remote(), timeout=30)
    except (ValueError, ray.exceptions.RayError):  # the job just ended and took its ledger along
        return None
    return sum(e["rows"] for e in actors.values() if e["node"] == node), sum(e["rows"] for e in actors.values())
