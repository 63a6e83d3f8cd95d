"""An exported folder opened once (model_folder.ExportFolder), and a gate's verdict tied to the files it judged.

A swapped graph is the same size as the one it replaces (a permuted weight tensor, a valid graph that answers
differently): only its sha256 can tell, and predict, serve and the Ray engine must refuse it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import httpx
import pytest
from test_faults import one_line_error, reviews, run_cli, write_jsonl
from test_serve import running

from imdb_deploy import fileio
from imdb_deploy.errors import ModelLoadError
from imdb_deploy.fileio import sha256_file
from imdb_deploy.runtimes import folder as model_folder
from imdb_deploy.runtimes.folder import ExportFolder
from imdb_deploy.runtimes.predictor import Predictor

LEGACY_ONNX = Path(__file__).parent / "data" / "legacy-4.57" / "onnx"


@pytest.fixture
def onnx_copy(tiny_onnx_dir, tmp_path):
    folder = tmp_path / "onnx-copy"
    shutil.copytree(tiny_onnx_dir, folder)
    return folder


def swap_in_a_same_size_graph(folder: Path, name: str = "onnx/model_quantized.onnx") -> Path:
    """Replace a graph by a valid one of exactly the same size whose largest weight is permuted."""
    import onnx
    from onnx import numpy_helper

    path = folder / name
    size = path.stat().st_size
    graph = onnx.load(str(path))
    weight = max(graph.graph.initializer, key=lambda init: len(init.raw_data))
    values = numpy_helper.to_array(weight)
    weight.CopyFrom(numpy_helper.from_array(values.reshape(-1)[::-1].reshape(values.shape).copy(), weight.name))
    onnx.save(graph, str(path))
    assert path.stat().st_size == size
    return path


# --- one object for an opened folder ------------------------------------------------------------------------


def test_predictors_of_one_opened_folder_share_its_tokenizer_and_report(tiny_onnx_dir, monkeypatch):
    from transformers import AutoTokenizer

    import imdb_deploy.runtimes.folder as artifacts

    loads, reads = [], []
    real_from_pretrained, real_read_json = AutoTokenizer.from_pretrained, model_folder.read_json
    monkeypatch.setattr(
        AutoTokenizer, "from_pretrained", lambda *a, **k: loads.append(a) or real_from_pretrained(*a, **k)
    )
    monkeypatch.setattr(model_folder, "read_json", lambda path: reads.append(Path(path).name) or real_read_json(path))
    checks = []
    real_refuse = model_folder.refuse_custom_code
    monkeypatch.setattr(model_folder, "refuse_custom_code", lambda path: checks.append(path) or real_refuse(path))
    monkeypatch.setattr(artifacts, "refuse_custom_code", lambda path: checks.append(path) or real_refuse(path))
    folder = ExportFolder(tiny_onnx_dir)
    predictors = [Predictor(folder, variant=name) for name in ("fp32", "optimized", "int8")]
    assert len(loads) == 1 and sorted(reads) == ["config.json", "export_report.json"] and checks == [tiny_onnx_dir]
    assert all(p.folder is folder and p.tokenizer is folder.tokenizer for p in predictors)
    assert {p.settings for p in predictors} == {folder.settings} and folder.label_names == ("negative", "positive")
    assert folder.variants == {name: tiny_onnx_dir / file for name, file in folder.variants.items()}
    assert Predictor(tiny_onnx_dir, variant="int8").model_path == folder.resolve_variant("auto")[1]


# --- checksums ------------------------------------------------------------------------------------------------


def test_export_records_the_sha256_of_every_file_it_wrote(tiny_onnx_dir):
    report = json.loads((tiny_onnx_dir / "export_report.json").read_text())
    files = {p.relative_to(tiny_onnx_dir).as_posix() for p in tiny_onnx_dir.rglob("*") if p.is_file()}
    files.discard("export_report.json")
    assert set(report["checksums"]) == files
    graphs = {"onnx/model.onnx", "onnx/model_quantized.onnx"}
    assert {*graphs, "tokenizer.json", "config.json", "train_config.json"} <= files
    for name, entry in report["checksums"].items():
        data = (tiny_onnx_dir / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert Predictor(tiny_onnx_dir).files.verified


def test_a_file_is_hashed_once_until_it_changes(onnx_copy, monkeypatch):
    hashed = []
    real = hashlib.sha256
    monkeypatch.setattr(fileio.hashlib, "sha256", lambda: hashed.append(1) or real())
    path = onnx_copy / "onnx" / "model.onnx"
    first = sha256_file(path)
    assert sha256_file(path) == first and len(hashed) == 1
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert sha256_file(path) == first and len(hashed) == 2


def test_predict_refuses_a_same_size_swapped_graph(onnx_copy, tmp_path):
    graph = swap_in_a_same_size_graph(onnx_copy)
    source = write_jsonl(tmp_path / "in.jsonl", reviews(3))
    line = one_line_error(run_cli(["predict", source, "-m", onnx_copy, "-q"]))
    assert line.startswith(f"Error: {graph}: changed since export (its sha256 differs from the one export_report")
    assert "re-export the folder" in line and "--allow-unverified" in line
    with pytest.raises(ModelLoadError, match="changed since export"):
        Predictor(onnx_copy)
    # Another variant's files are untouched: it still runs, verified.
    assert Predictor(onnx_copy, variant="fp32").files.verified


def test_allow_unverified_runs_a_changed_graph_and_says_so(onnx_copy, tmp_path):
    swap_in_a_same_size_graph(onnx_copy)
    source = write_jsonl(tmp_path / "in.jsonl", reviews(3))
    result = run_cli(["predict", source, "-m", onnx_copy, "-q", "--allow-unverified"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 3
    summary = result.stderr.strip().splitlines()[-1]
    assert "model UNVERIFIED:" in summary and "model_quantized.onnx: changed since export" in summary
    predictor = Predictor(onnx_copy, allow_unverified=True)
    assert (predictor.files.status, predictor.files.verified) == ("mismatch", False)


def test_serve_refuses_a_swapped_graph_and_allow_unverified_says_so_in_info(onnx_copy):
    from imdb_deploy.serve.app import create_app, load_predictor
    from imdb_deploy.serve.config import ServeConfig

    swap_in_a_same_size_graph(onnx_copy)
    line = one_line_error(run_cli(["serve", onnx_copy, "--port", "0"]))
    assert "model_quantized.onnx: changed since export" in line and "--allow-unverified" in line
    config = ServeConfig(access_log=False, allow_unverified=True)
    app = create_app(load_predictor(onnx_copy, config), config, onnx_copy)
    with running(app) as url:
        parity = httpx.get(f"{url}/info", timeout=10).json()["parity"]
    assert parity["verified"] is False and parity["files"] == "mismatch"
    assert "model_quantized.onnx: changed since export" in parity["reason"]


def test_the_ray_engine_refuses_a_swapped_graph_on_the_driver_and_in_each_actor(onnx_copy, tmp_path):
    from imdb_deploy.engines.ray import _Scorer, predict_ray

    swap_in_a_same_size_graph(onnx_copy)
    source = write_jsonl(tmp_path / "in.jsonl", reviews(3))
    with pytest.raises(ModelLoadError, match="model_quantized.onnx: changed since export"):
        predict_ray(onnx_copy, [source], tmp_path / "out")  # before Ray starts
    assert not (tmp_path / "out").exists()
    line = one_line_error(run_cli(["predict", source, "-m", onnx_copy, "--engine", "ray", "-o", tmp_path / "o", "-q"]))
    assert "model_quantized.onnx: changed since export" in line and "--allow-unverified" in line
    # What each actor does with the folder it was given (the shared path, or the shipped copy).
    with pytest.raises(ModelLoadError, match="model_quantized.onnx: changed since export"):
        _Scorer(str(onnx_copy), "int8", 1, {}, None)


def test_a_real_ray_job_checks_the_shipped_copy_and_allow_unverified_says_so(onnx_copy, tmp_path):
    """Each actor checks the copy of the folder it was shipped: an intact folder passes the check there, and a
    changed one runs only with allow_unverified, which the summary reports."""
    ray = pytest.importorskip("ray")
    from imdb_deploy.engines.cluster import connect
    from imdb_deploy.engines.config import RayPredictConfig
    from imdb_deploy.engines.ray import predict_ray

    source = write_jsonl(tmp_path / "in.jsonl", reviews(5))
    config = RayPredictConfig(actors=(1, 1), progress=False, ship_model=True)
    os.environ.pop("RAY_ADDRESS", None)
    started = connect(num_cpus=2, quiet=True)  # predict_ray joins it
    try:
        intact = predict_ray(onnx_copy, [source], tmp_path / "intact", config)
        assert (intact.scored, intact.unverified) == (5, None) and "UNVERIFIED" not in intact.describe()
        swap_in_a_same_size_graph(onnx_copy)
        allowed = RayPredictConfig(actors=(1, 1), progress=False, ship_model=True, allow_unverified=True)
        summary = predict_ray(onnx_copy, [source], tmp_path / "changed", allowed)
    finally:
        if started:
            ray.shutdown()
    assert summary.scored == 5 and "model_quantized.onnx: changed since export" in summary.unverified
    assert "; model UNVERIFIED: " in summary.describe()


def test_a_folder_exported_before_checksums_runs_marked_unverified(tmp_path):
    """A legacy folder (no checksums in its report) loads, as it did; it is never reported as verified."""
    from imdb_deploy.serve.app import parity_verdict

    predictor = Predictor(LEGACY_ONNX, variant="fp32", threads=1)
    assert predictor.files.status == "unrecorded"
    assert f"run `imdb-deploy verify {LEGACY_ONNX} --record`" in predictor.files.reason
    verdict = parity_verdict(predictor, LEGACY_ONNX)
    assert verdict["verified"] is False and verdict["gate_passed"] is True and verdict["files"] == "unrecorded"
    source = write_jsonl(tmp_path / "in.jsonl", reviews(3))
    result = run_cli(["predict", source, "-m", LEGACY_ONNX, "--variant", "fp32", "-q"])
    assert result.exit_code == 0, result.output
    assert "; model UNVERIFIED: " in result.stderr and "records no checksums" in result.stderr


def test_verify_record_rewrites_the_checksums_of_the_files_it_judged(onnx_copy, tiny_classifier_dir, toy_data_dir):
    from imdb_deploy.export.config import VerifyConfig
    from imdb_deploy.export.gate import check_parity, record_parity

    before = json.loads((onnx_copy / "export_report.json").read_text())["checksums"]
    graph = swap_in_a_same_size_graph(onnx_copy)
    config = VerifyConfig(data=str(toy_data_dir), samples=20, invariance_samples=4, variants=("int8",))
    record_parity(onnx_copy, check_parity(onnx_copy, model=tiny_classifier_dir, config=config))
    after = json.loads((onnx_copy / "export_report.json").read_text())["checksums"]
    name = graph.relative_to(onnx_copy).as_posix()  # onnx/model_quantized.onnx
    assert after[name]["sha256"] == hashlib.sha256(graph.read_bytes()).hexdigest() != before[name]["sha256"]
    assert {key: entry for key, entry in after.items() if key != name} == {
        key: entry for key, entry in before.items() if key != name
    }
    assert Predictor(onnx_copy, variant="int8").files.verified


# --- unreadable artifacts (issue 25 item 12) ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["config.json", "train_config.json"])
def test_random_bytes_in_a_config_file_are_one_line(onnx_copy, tmp_path, name):
    (onnx_copy / name).write_bytes(bytes(range(256)) * 4)
    source = write_jsonl(tmp_path / "in.jsonl", reviews(3))
    line = one_line_error(run_cli(["predict", source, "-m", onnx_copy, "-q", "--allow-unverified"]))
    assert line.startswith(f"Error: {onnx_copy / name}: not UTF-8 text") and "re-create it" in line
    # Without the flag it is refused too, in one line (config.json is read before the checksums are checked).
    assert str(onnx_copy / name) in one_line_error(run_cli(["predict", source, "-m", onnx_copy, "-q"]))


def test_random_bytes_in_a_trained_folders_train_config_are_one_line(tiny_classifier_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_classifier_dir, model)
    (model / "train_config.json").write_bytes(b"\xff\xfe\x00garbage\x80")
    line = one_line_error(run_cli(["export", model, "-o", tmp_path / "onnx", "--no-verify", "-q"]))
    assert line.startswith(f"Error: {model / 'train_config.json'}: not UTF-8 text")
    assert not (tmp_path / "onnx").exists()


def test_random_bytes_in_the_export_report_are_refused_at_load_and_never_a_500(onnx_copy):
    from imdb_deploy.serve.app import create_app, load_predictor
    from imdb_deploy.serve.config import ServeConfig

    report = onnx_copy / "export_report.json"
    report.write_bytes(os.urandom(512) + b"\xff")
    line = one_line_error(run_cli(["serve", onnx_copy, "--port", "0"]))
    assert line.startswith(f"Error: {report}: not UTF-8 text") and "--allow-unverified" in line
    config = ServeConfig(access_log=False, allow_unverified=True)
    app = create_app(load_predictor(onnx_copy, config), config, onnx_copy)
    with running(app) as url:
        response = httpx.get(f"{url}/info", timeout=10)
    assert response.status_code == 200
    parity = response.json()["parity"]
    assert parity["verified"] is False  # the reason names the folder, not its absolute path (no --info-details)
    assert parity["reason"].startswith(f"{onnx_copy.name}/{report.name}: not UTF-8 text") and str(onnx_copy) not in str(
        parity
    )
    report.write_text("[1, 2]")  # valid JSON, not an object
    assert "expected a JSON object, got list" in one_line_error(run_cli(["serve", onnx_copy, "--port", "0"]))


def test_a_folder_without_a_report_loads_unverified_with_the_fix(onnx_copy):
    from imdb_deploy.serve.app import parity_verdict

    (onnx_copy / "export_report.json").unlink()
    predictor = Predictor(onnx_copy)
    assert predictor.files.status == "unrecorded" and predictor.files.reason.endswith("re-export it")
    assert parity_verdict(predictor, onnx_copy) == {
        "verified": False,
        "reason": "no export_report.json in the model folder",
        "files": "unrecorded",
    }
