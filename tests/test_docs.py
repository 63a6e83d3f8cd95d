"""Docs that cannot go stale: docs/cli.md is the real --help, result tables come from recorded JSON, and nothing in
the README, docs, scripts, research or the package names a path of a development machine or a session's words."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import make_docs  # noqa: E402
import record_result  # noqa: E402

from imdb_deploy import machine  # noqa: E402

SCANNED = ("README.md", "docs", "scripts", "research", "imdb_deploy")
TEXT_SUFFIXES = {".py", ".md", ".sh", ".json", ".txt", ".toml", ".cfg", ".yaml", ".yml"}


# --- generated files are current --------------------------------------------------------------------------


def test_cli_md_is_the_current_help():
    assert (ROOT / "docs" / "cli.md").read_text() == make_docs.cli_markdown(), (
        "docs/cli.md is stale: run python scripts/make_docs.py"
    )


def test_every_generated_file_is_current():
    assert [str(p.relative_to(ROOT)) for p in make_docs.stale(ROOT)] == [], "run python scripts/make_docs.py"


def docs_root(tmp_path: Path) -> Path:
    """A copy of the README and docs/ (without recorded results) to generate into."""
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    shutil.copy(ROOT / "README.md", root / "README.md")
    for page in (ROOT / "docs").glob("*.md"):
        shutil.copy(page, root / "docs" / page.name)
    return root


def test_check_exits_1_naming_the_stale_file(tmp_path, capsys):
    root = docs_root(tmp_path)
    assert make_docs.main(["--root", str(root)]) == 0
    assert make_docs.main(["--check", "--root", str(root)]) == 0
    cli_md = root / "docs" / "cli.md"
    cli_md.write_text(cli_md.read_text().replace("--max-length", "--max-len", 1))
    capsys.readouterr()
    assert make_docs.main(["--check", "--root", str(root)]) == 1
    assert capsys.readouterr().err == "docs/cli.md is stale: run python scripts/make_docs.py\n"
    assert make_docs.main(["--root", str(root)]) == 0
    assert make_docs.main(["--check", "--root", str(root)]) == 0


def test_no_results_yet_points_the_readme_to_benchmarks(tmp_path):
    root = docs_root(tmp_path)
    assert make_docs.main(["--root", str(root)]) == 0
    assert "No current results are recorded." in (root / "docs" / "benchmarks.md").read_text()
    block = re.search(r"RESULTS:START.*?RESULTS:END", (root / "README.md").read_text(), re.S).group(0)
    assert "No headline result is recorded yet; [docs/benchmarks.md](docs/benchmarks.md)" in block


# --- tables from synthetic results -------------------------------------------------------------------------

MACHINE = {
    "cpu_model": "Example CPU 9000",
    "isa": ["avx512_vnni", "avx512bw", "avx512f", "avx2", "fma", "amx_int8"],
    "physical_cores": 8,
    "logical_cpus": 16,
    "memory_gib": 64.0,
    "versions": {"onnxruntime": "1.32.0", "torch": "2.13.0"},
}


def meta(kind: str, **extra) -> dict:
    return {
        "kind": kind,
        "title": f"{kind} run",
        "command": f"python scripts/bench_{kind}.py --data imdb --output runs/{kind}.json",
        "date": "2030-01-02 03:04 UTC",
        "commit": "0123456789ab",
        "dirty": False,
        "quiet": True,
        "machine": MACHINE,
        **extra,
    }


BENCH = {
    "schema": 1,
    "model": {"spec": "runs/minilm-2k", "weights": "trained"},
    "data": {"source": "imdb", "split": "test", "samples": 256, "mean_tokens": 210.4, "settings": {"max_length": 256}},
    "baseline": "pytorch-fp32",
    "rows": {
        "pytorch-fp32": {
            "status": "ok",
            "reviews_per_s": 29.061,
            "speedup": 1.0,
            "accuracy": 0.84766,
            "latency_batch1": {"short": {"p50_ms": 23.2}, "long": {"p50_ms": 39.4}},
            "model_bytes": 91e6,
            "peak_rss_mb": 812.0,
        },
        "predict": {
            "status": "ok",
            "reviews_per_s": 108.684,
            "speedup": 3.7398,
            "accuracy": 0.85156,
            "vs_baseline": {"agreement": 0.99609},
            "latency_batch1": {"short": {"p50_ms": 12.1}, "long": {"p50_ms": 23.0}},
            "model_bytes": 23e6,
            "peak_rss_mb": 640.0,
        },
        "openvino-int8": {"status": "skipped", "reason": "the openvino extra is not installed"},
    },
    "fastest": {"row": "predict", "share_of_int8_peak": 0.72, "int8_peak_macs_per_s": 1.2e12},
}
SERVE = {
    "samples": 1000,
    "seed": 42,
    "offline": {"predict_reviews_per_s": 139.1, "batch1_reviews_per_s": 67.2, "batch1_latency_ms": {"p50": 16.4}},
    "batched": {"runs": [{"concurrency": 32, "reviews_per_s": 118.6, "latency_ms": {"p50": 270.0}, "errors": 0}]},
    "unbatched": {"runs": [{"concurrency": 32, "reviews_per_s": 68.5, "latency_ms": {"p50": 468.0}, "errors": 0}]},
    "goals": {"c32_vs_offline_predict": 0.853},
    "soak": {
        "seconds": 600,
        "concurrency": 32,
        "requests": 56512,
        "errors": 0,
        "rss_slope_mb_per_min_after_warmup": 0.009,
    },
}
RAY = {
    "rows": 20000,
    "shards": 8,
    "runs": [
        {"engine": "local", "threads": 2, "rows_per_second": 115.7},
        {
            "engine": "ray",
            "actors": 2,
            "cpus_per_actor": 1,
            "rows_per_second": 95.4,
            "rows_per_second_without_startup": 96.5,
            "ray_startup_seconds": 2.5,
            "vs_local_with_startup": 0.8245,
            "identical_ids": True,
            "identical_labels": True,
        },
    ],
}


def write_result(root: Path, name: str, envelope: dict) -> Path:
    path = root / "docs" / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(envelope))
    return path


def test_tables_come_from_the_recorded_json_with_machine_date_commit_and_command(tmp_path):
    root = docs_root(tmp_path)
    write_result(root, "bench-minilm", {"meta": meta("bench", headline=True), "result": BENCH})
    write_result(root, "serve-minilm", {"meta": meta("serve", quiet=False), "result": SERVE})
    write_result(root, "ray-20k", {"meta": meta("ray"), "result": RAY})
    assert make_docs.main(["--root", str(root)]) == 0
    page = (root / "docs" / "benchmarks.md").read_text()
    assert "No current results" not in page
    for expected in (
        "## bench run",
        "| `predict` | 108.68 | 3.74x | 0.8516 | 99.61% | 12 / 23 | 23.0 | 640 |",
        "| `openvino-int8` | skipped: the openvino extra is not installed |",
        "72% of these cores' INT8 peak",
        "- Machine: Example CPU 9000, 8 physical cores (16 logical), 64.0 GiB; ISA AVX-512 VNNI + AMX",
        "- Cores quiet: yes, nothing else ran on them",
        "- Cores quiet: no, other work shared them",
        "- Date: 2030-01-02 03:04 UTC; commit `0123456789ab`",
        "python scripts/bench_bench.py --data imdb --output runs/bench.json",
        "| offline `Predictor.predict_proba` |  | 139.10 |",
        "| server, dynamic batching | 32 | 118.60 | 270.0 /  /  | 0 |",
        "c32_vs_offline_predict 0.853",
        "56512 requests, 0 errors",
        "| ray | 2 actors x 1 CPUs | 95.40 | 0.82x | 96.50 | 2.5 | ids identical, labels identical |",
        "| local | 2 threads | 115.70 | 1.00x |",
    ):
        assert expected in page, expected
    readme = (root / "README.md").read_text()
    block = re.search(r"RESULTS:START.*?RESULTS:END", readme, re.S).group(0)
    assert "**bench run** (`docs/results/bench-minilm.json`" in block
    assert "| `predict` | 108.68 | 3.74x | 0.8516 | 99.61% |" in block
    assert "serve" not in block and "weights are random" not in block
    assert make_docs.main(["--check", "--root", str(root)]) == 0
    # a new result makes the pages stale until they are generated again
    write_result(root, "ray-2k", {"meta": meta("ray", title="ray small"), "result": {**RAY, "rows": 2000}})
    assert make_docs.main(["--check", "--root", str(root)]) == 1


@pytest.mark.parametrize(
    ("envelope", "message"),
    [
        ({"result": BENCH}, "expected {'meta': {...}, 'result': ...}"),
        ({"meta": {k: v for k, v in meta("bench").items() if k != "machine"}, "result": BENCH}, "meta has no machine"),
        ({"meta": {**meta("bench"), "commit": ""}, "result": BENCH}, "meta has no commit"),
        ({"meta": {**meta("bench"), "quiet": "yes"}, "result": BENCH}, "meta.quiet must be true or false"),
        ({"meta": {**meta("bench"), "machine": {"cpu_model": "x"}}, "result": BENCH}, "meta.machine has no isa"),
        ({"meta": meta("serve"), "result": BENCH}, "meta.kind is 'serve' but the result reads as 'bench'"),
        ({"meta": {**meta("bench"), "dirty": True}, "result": BENCH}, "recorded from uncommitted code"),
    ],
)
def test_a_result_without_its_facts_is_refused_naming_the_file(tmp_path, capsys, envelope, message):
    root = docs_root(tmp_path)
    path = write_result(root, "bad", envelope)
    assert make_docs.main(["--check", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"make_docs: {path}: ") and message in err, err
    assert len(err.strip().splitlines()) == 1


def test_two_headlines_are_refused(tmp_path, capsys):
    root = docs_root(tmp_path)
    write_result(root, "a", {"meta": meta("bench", headline=True), "result": BENCH})
    write_result(root, "b", {"meta": meta("ray", headline=True), "result": RAY})
    assert make_docs.main(["--root", str(root)]) == 1
    assert "a, b are all marked headline; keep one" in capsys.readouterr().err


# --- recording a run ---------------------------------------------------------------------------------------


def test_record_result_wraps_the_commands_json_with_machine_date_and_commit(tmp_path):
    source, out, results = tmp_path / "src.json", tmp_path / "out.json", tmp_path / "docs" / "results"
    source.write_text(json.dumps({**RAY, "model": f"{ROOT}/runs/minilm-2k-onnx"}))
    args = ["ray-20k", "--kind", "ray", "--result", str(out), "--quiet-cores", "--allow-dirty", "--headline"]
    code = record_result.main([*args, "--results-dir", str(results), "--", "cp", str(source), str(out)])
    assert code == 0
    envelope = json.loads((results / "ray-20k.json").read_text())
    meta = envelope["meta"]
    assert meta["command"] == f"cp {source} {out}"
    assert meta["kind"] == "ray" and meta["quiet"] is True and meta["headline"] is True
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert head.startswith(meta["commit"]) and len(meta["commit"]) == 12
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", meta["date"])
    assert meta["machine"]["cpu_model"] == machine.cpu_model()
    assert meta["machine"]["physical_cores"] == machine.physical_cores()
    assert set(machine.machine_info()["isa"]) <= set(meta["machine"]["isa"])
    assert "flags" not in meta["machine"]
    assert envelope["result"]["runs"] == RAY["runs"]
    assert envelope["result"]["model"] == "runs/minilm-2k-onnx"  # the repository's own path made relative
    make_docs.check_envelope({**envelope, "meta": {**meta, "dirty": False}}, "recorded")

    # the same name again needs --replace, and the replaced run is listed in history.md
    (results.parent / "history.md").write_text("# History\n\n## Replaced runs\n")
    assert record_result.main([*args, "--results-dir", str(results), "--", "cp", str(source), str(out)]) == 1
    replace = [*args, "--replace", "--results-dir", str(results), "--", "cp", str(source), str(out)]
    assert record_result.main(replace) == 0
    history = (results.parent / "history.md").read_text()
    assert f"- `ray-20k` (ray-20k): recorded {meta['date']} at `{meta['commit']}` on {machine.cpu_model()}" in history


def test_record_result_refuses_a_result_the_command_did_not_write(tmp_path, capsys):
    old = tmp_path / "old.json"
    old.write_text(json.dumps(RAY))
    args = ["x", "--kind", "ray", "--result", str(old), "--shared-cores", "--allow-dirty"]
    assert record_result.main([*args, "--results-dir", str(tmp_path / "results"), "--", "true"]) == 1
    assert f"{old} was not written by this run" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_record_result_refuses_machine_paths_and_failed_commands(tmp_path, capsys):
    out = tmp_path / "out.json"
    args = ["x", "--kind", "ray", "--result", str(out), "--shared-cores", "--allow-dirty"]
    results = ["--results-dir", str(tmp_path / "results")]
    assert record_result.main([*args, *results, "--", "cp", "/root/src.json", str(out)]) == 1
    assert "names a path of this machine" in capsys.readouterr().err
    assert record_result.main([*args, *results, "--", "false"]) == 1
    assert "the command exited 1; nothing recorded" in capsys.readouterr().err
    source = tmp_path / "src.json"
    source.write_text(json.dumps({**RAY, "model": "/home/someone/minilm-onnx"}))
    assert record_result.main([*args, *results, "--", "cp", str(source), str(out)]) == 1
    assert "result.model (/home/someone/minilm-onnx) names a path of this machine" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


# --- nothing a newcomer cannot run -------------------------------------------------------------------------


def scanned_files() -> list[Path]:
    files = []
    for name in SCANNED:
        path = ROOT / name
        found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        files += [p for p in found if p.suffix in TEXT_SUFFIXES and "__pycache__" not in p.parts]
    return files


def offending_lines(text: str) -> list[str]:
    return [
        line.strip()
        for line in text.splitlines()
        if make_docs.MACHINE_PATHS.search(line) or make_docs.SESSION_WORDS.search(line)
    ]


def test_no_machine_paths_or_session_words_in_readme_docs_scripts_research_or_package():
    assert len(scanned_files()) > 50  # the scan really reads the tree
    hits = [
        f"{path.relative_to(ROOT)}: {line[:120]}"
        for path in scanned_files()
        for line in offending_lines(path.read_text())
    ]
    assert hits == [], "a newcomer cannot run or read these:\n" + "\n".join(hits)


@pytest.mark.parametrize(
    "line",
    [
        "--data /root/imdb-data",
        "--model /work/wt/artifacts/minilm-2k-onnx",
        "BASE=/home/alice/models/minilm",
        "--data ../shared/data/imdb",
        "a re-run on this session's machine",
        "with the code as submitted",
        "measured on the commit before this README line",
        "see issue 12 for the fix",
        "Issues 12 and 17",
        "the quiet.sh wrapper",
    ],
)
def test_the_scan_catches_each_kind(line):
    assert offending_lines(line) == [line]


@pytest.mark.parametrize(
    "line",
    [
        "session = ort.InferenceSession(path)",
        "https://example.org/work/page",
        "~/work/imdb is yours to name",
        "see [issue 12](https://github.com/o/r/issues/12)",
        "--data imdb (the Hub id) or a local folder",
    ],
)
def test_the_scan_leaves_ordinary_text_alone(line):
    assert offending_lines(line) == []


# --- the README keeps its promises -------------------------------------------------------------------------


def test_every_test_the_readme_names_exists():
    """README's Guarantees name a test per promise, docs/guarantees.md one per case: every one exists."""
    aliases = {"faults": "tests/test_faults.py", "model": "tests/test_model_folder.py"}
    readme = (ROOT / "README.md").read_text()
    named_in_readme = set(re.findall(r"`(faults|model|tests/[\w/]+\.py)::(test_\w+)`", readme))
    assert len(named_in_readme) > 15
    text = readme + (ROOT / "docs" / "guarantees.md").read_text()
    named = set(re.findall(r"`(faults|model|tests/[\w/]+\.py)::(test_\w+)`", text))
    assert len(named) > 40
    missing = []
    for where, name in sorted(named):
        path = ROOT / aliases.get(where, where)
        if not re.search(rf"^def {name}\(", path.read_text(), re.M):
            missing.append(f"{where}::{name}")
    assert missing == []


def test_ci_runs_the_readme_test_command_last_and_the_checks_before_it():
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"## Tests\n\n```bash\n(.+)\n```", readme).group(1)
    assert command == ".venv/bin/pytest -q"
    steps = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert steps[-1] == command
    assert "set -euo pipefail" in steps
    for check in ("ruff check", "ruff format --check", "scripts/make_docs.py --check"):
        assert any(check in step for step in steps[:-1]), check


def test_readme_is_a_product_page_whose_layout_names_every_module():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 450
    layout = readme.split("## Project layout", 1)[1]
    modules = sorted(p.name for p in (ROOT / "imdb_deploy").glob("*.py") if not p.name.startswith("__"))
    assert [name for name in modules if not re.search(rf"\b{re.escape(name)}\b", layout)] == []


def test_random_weights_say_their_accuracy_is_blank(tmp_path):
    root = docs_root(tmp_path)
    random_bench = {**BENCH, "model": {"spec": "distilbert-base", "weights": "random"}}
    write_result(root, "bench-base", {"meta": meta("bench"), "result": random_bench})
    assert make_docs.main(["--root", str(root)]) == 0
    page = (root / "docs" / "benchmarks.md").read_text()
    assert "distilbert-base (random weights), 256 reviews of imdb [test], max length 256" in page
    assert "Accuracy is blank and label agreement says little: the weights are random" in page


# --- the seed's results table and the frontier -------------------------------------------------------------


def exported(folder: Path, accuracy: float, default_accuracy: float, layers: int, teacher: str | None = None) -> Path:
    """An export folder's files as accuracy_table.py reads them: the gate's metrics, config and train config."""
    folder.mkdir(parents=True)

    def scores(acc: float) -> dict:
        return {"accuracy": acc, "f1": acc - 0.01, "precision": acc + 0.01, "recall": acc - 0.02, "samples": 25000}

    report = {
        "verified": True,
        "default_variant": "int8",
        "settings": {"max_length": 256},
        "parity": {
            "data": "imdb",
            "split": "test",
            "samples": 25000,
            "pytorch_metrics": scores(accuracy),
            "variants": {"int8": {"metrics": scores(default_accuracy), "agreement": 0.995}},
        },
    }
    (folder / "export_report.json").write_text(json.dumps(report))
    (folder / "config.json").write_text(json.dumps({"n_layers": layers}))
    (folder / "train_config.json").write_text(json.dumps({"teacher": {"name": teacher} if teacher else None}))
    return folder


def test_the_seed_table_comes_from_the_gate_with_speeds_from_one_bench_run(tmp_path):
    import accuracy_table

    from imdb_deploy.bench.frontier import frontier_report

    teacher = exported(tmp_path / "teacher-onnx", 0.9301, 0.9288, 6)
    student = exported(tmp_path / "student-onnx", 0.9251, 0.9240, 3, teacher="teacher")
    slow = {
        **BENCH,
        "machine": MACHINE,
        "rows": {"pytorch-fp32": BENCH["rows"]["pytorch-fp32"], "predict": BENCH["rows"]["predict"]},
    }
    fast = json.loads(json.dumps(slow))
    fast["rows"]["predict"]["reviews_per_s"] = 240.0
    frontier = frontier_report({"teacher-onnx": slow, "student-onnx": fast}, None)
    bench_json = tmp_path / "bench.json"
    bench_json.write_text(json.dumps(frontier))
    out = tmp_path / "accuracy.json"
    assert accuracy_table.main([str(teacher), str(student), "--bench", str(bench_json), "-o", str(out)]) == 0
    result = json.loads(out.read_text())
    assert make_docs.detect_kind(result) == "accuracy"
    assert result["models"]["student-onnx"]["teacher"] == "teacher"
    assert result["models"]["student-onnx"]["reviews_per_s"]["default"] == 240.0

    root = docs_root(tmp_path)
    write_result(root, "full-imdb", {"meta": meta("accuracy", headline=True), "result": result})
    write_result(root, "frontier", {"meta": meta("frontier"), "result": frontier})
    assert make_docs.main(["--root", str(root)]) == 0
    block = re.search(r"RESULTS:START.*?RESULTS:END", (root / "README.md").read_text(), re.S).group(0)
    assert "The parity gate's scores at export: 25000 reviews of imdb [test]." in block
    assert "| `teacher-onnx` (6 layers) | PyTorch fp32 | 0.9301 | 0.9201 | 0.9401 | 0.9101 | 29.06 | 1.00x |" in block
    assert "| `student-onnx` (3 layers, distilled from `teacher`) | default: int8 | 0.9240 |" in block
    assert "| 240.00 | 8.26x |" in block
    page = (root / "docs" / "benchmarks.md").read_text()
    assert "| `student-onnx` | `predict` | 240.00 | 8.26x | 0.8516 | yes |" in page
    assert "`student-onnx` 240.00 reviews/s = 2.21x `teacher-onnx`'s, accuracy 0.8516 (+0.00 points)" in page


def test_the_seed_table_refuses_a_folder_the_gate_did_not_check(tmp_path, capsys):
    import accuracy_table

    folder = exported(tmp_path / "unchecked-onnx", 0.93, 0.93, 6)
    report = json.loads((folder / "export_report.json").read_text())
    (folder / "export_report.json").write_text(json.dumps({**report, "verified": False}))
    assert accuracy_table.main([str(folder), "-o", str(tmp_path / "a.json")]) == 1
    err = capsys.readouterr().err
    assert "was not verified by the parity gate" in err and "imdb-deploy export" in err
    assert not (tmp_path / "a.json").exists()
