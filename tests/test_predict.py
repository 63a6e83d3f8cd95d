"""Predictor and `imdb-deploy predict`: order, batching, every input format, every bad-input case, flat memory."""

from __future__ import annotations

import csv
import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import toy_reviews

from imdb_deploy.errors import ConfigError, InputError, ModelLoadError
from imdb_deploy.machine import resident_bytes


@pytest.fixture(scope="module")
def onnx_dir(tiny_onnx_dir):
    """The shared tiny exported folder (fp32, optimized and INT8 models, tokenizer, train_config.json)."""
    return tiny_onnx_dir


@pytest.fixture(scope="module")
def predictor(onnx_dir):
    from imdb_deploy.runtimes.predictor import Predictor

    return Predictor(onnx_dir, variant="fp32")


def test_auto_variant_takes_int8_on_cpu(onnx_dir):
    from imdb_deploy.runtimes.predictor import Predictor

    assert Predictor(onnx_dir).variant == "int8"


def test_sorted_batches_keep_input_order_and_match_one_at_a_time(onnx_dir, predictor):
    from imdb_deploy.runtimes.predictor import Predictor

    texts, _ = toy_reviews(120, seed=3, min_words=1, max_words=80)
    small = Predictor(onnx_dir, variant="fp32", batch_size=7, max_tokens=200)
    batched = small.predict_proba(texts)
    single = np.concatenate([predictor.predict_proba([text]) for text in texts])
    assert batched.shape == (120, 2)
    np.testing.assert_allclose(batched, single, atol=1e-5)
    # Reversing the input reverses the output: rows follow the input, not the length sort.
    np.testing.assert_allclose(small.predict_proba(texts[::-1]), batched[::-1], atol=1e-5)


def test_default_variant_gives_a_review_the_same_answer_in_any_batch(onnx_dir):
    from imdb_deploy.runtimes.predictor import Predictor

    texts, _ = toy_reviews(96, seed=11, min_words=1, max_words=80)
    predictor = Predictor(onnx_dir)  # auto: dynamic INT8, one review per call
    assert predictor.describe()["per_review"] is True and predictor.describe()["batch_invariant"] is True
    alone = np.concatenate([predictor.predict_proba([text]) for text in texts])
    together = predictor.predict_proba(texts)
    order = np.random.default_rng(0).permutation(len(texts))
    shuffled = np.empty_like(together)
    for start in range(0, len(texts), 32):  # random batches of 32, as a server's micro-batches
        group = order[start : start + 32]
        shuffled[group] = predictor.predict_proba([texts[i] for i in group])
    raw = predictor.run_batch(predictor.encode(texts[:32]))  # even one low-level call runs review by review
    np.testing.assert_array_equal(raw, np.concatenate([predictor.logits([text]) for text in texts[:32]]))
    for other in (together, shuffled):
        assert np.abs(other - alone).max() <= 1e-5
        assert (other.argmax(axis=1) == alone.argmax(axis=1)).all()
    # The same file batched is batch-dependent, which is why it is not the default: the check above can fail.
    batched = Predictor(onnx_dir, variant="int8-batched")
    assert batched.describe()["batch_invariant"] is False
    assert np.abs(batched.predict_proba(texts) - alone).max() > 1e-5


def test_per_review_variant_plans_one_call_per_review(onnx_dir):
    from imdb_deploy.runtimes.predictor import Predictor

    assert Predictor(onnx_dir, variant="int8").plan([5, 9, 7]) == [[0], [1], [2]]
    assert Predictor(onnx_dir, variant="int8-batched", max_tokens=None).plan([5, 9, 7]) == [[1, 2, 0]]


@pytest.mark.parametrize("variant", ["fp32", "int8", "int8-batched"])
def test_io_binding_path_gives_the_same_logits(onnx_dir, variant):
    from imdb_deploy.runtimes.predictor import Predictor

    texts, _ = toy_reviews(40, seed=5, min_words=1, max_words=60)
    plain = Predictor(onnx_dir, variant=variant, batch_size=8)
    bound = Predictor(onnx_dir, variant=variant, batch_size=8, io_binding=True)
    assert (plain.io_binding, bound.io_binding) == (False, True)  # None means: only for cuda
    np.testing.assert_array_equal(bound.logits(texts), plain.logits(texts))


def test_predict_returns_label_score_and_both_probabilities(predictor):
    texts, _ = toy_reviews(5, seed=4)
    results = predictor.predict(texts)
    proba = predictor.predict_proba(texts)
    assert len(results) == 5
    for result, row in zip(results, proba, strict=True):
        assert set(result.probabilities) == {"negative", "positive"}
        assert result.label == ("positive" if row[1] > row[0] else "negative")
        assert result.score == pytest.approx(max(row))
        assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-6)


def test_predict_handles_empty_and_long_inputs(predictor):
    assert predictor.predict_proba([]).shape == (0, 2)
    assert predictor.predict([]) == []
    long_text = " ".join(["great movie"] * 500)  # far past max_length 64: cut, not an error
    assert predictor.predict_proba([long_text, ""]).shape == (2, 2)


def test_predict_rejects_a_single_string_and_non_strings(predictor):
    with pytest.raises(InputError, match=r"pass a list of reviews"):
        predictor.predict("great movie")
    with pytest.raises(InputError, match=r"texts\[1\]: expected a string, got int"):
        predictor.predict(["fine", 3])


def test_bad_options_and_folders_are_named(onnx_dir, tmp_path):
    from imdb_deploy.runtimes.predictor import Predictor

    with pytest.raises(ConfigError, match=r"batch_size=0"):
        Predictor(onnx_dir, batch_size=0)
    with pytest.raises(ModelLoadError, match=r"has no fp16 model"):
        Predictor(onnx_dir, variant="fp16")
    with pytest.raises(ModelLoadError, match=r"no such folder"):
        Predictor(tmp_path / "missing")


# --- imdb-deploy predict ----------------------------------------------------------------------------------

SKIP_HINT = "(or pass --on-error skip --errors FILE to score the other rows and set bad ones aside)"
SUMMARY = re.compile(r"^(?P<counts>.+?); [\d,.]+ rows/s \([\d.]+ s\)(?P<rest>.*)$")


def run_predict(onnx_dir, *args, input=None):
    """Run `imdb-deploy predict` with the fp32 model; stdout and stderr apart."""
    from click.testing import CliRunner

    from imdb_deploy.cli import cli

    return CliRunner().invoke(cli, ["predict", "--model", str(onnx_dir), "--variant", "fp32", *args], input=input)


def summary_of(result) -> str:
    """The counts part of the summary line on stderr (timing varies)."""
    lines = [line for line in result.stderr.splitlines() if SUMMARY.match(line)]
    assert len(lines) == 1, result.stderr
    match = SUMMARY.match(lines[0])
    return match["counts"] + match["rest"]


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def expected_rows(predictor, ids, texts) -> list[dict]:
    proba = predictor.predict_proba(texts)
    rows = []
    for row_id, p in zip(ids, proba, strict=True):
        k = int(p.argmax())
        rows.append(
            {
                "id": row_id,
                "label": ("negative", "positive")[k],
                "score": round(float(p[k]), 6),
                "prob_negative": round(float(p[0]), 6),
                "prob_positive": round(float(p[1]), 6),
            }
        )
    return rows


def assert_rows_match(actual: list[dict], expected: list[dict]) -> None:
    assert [row["id"] for row in actual] == [row["id"] for row in expected]
    assert [row["label"] for row in actual] == [row["label"] for row in expected]
    for a, e in zip(actual, expected, strict=True):
        for key in ("score", "prob_negative", "prob_positive"):
            assert a[key] == pytest.approx(e[key], abs=2e-6)


def test_jsonl_file_to_stdout_in_input_order(onnx_dir, predictor, tmp_path):
    texts, _ = toy_reviews(50, seed=5, min_words=1, max_words=60)
    source = write_jsonl(tmp_path / "reviews.jsonl", [{"text": t, "stars": 3} for t in texts])
    result = run_predict(onnx_dir, str(source), "--chunk-size", "16", "--batch-size", "4")
    assert result.exit_code == 0, result.output
    ids = [f"reviews.jsonl:{line}" for line in range(1, 51)]  # a named file: FILE:LINE ids (stdin: LINE)
    assert_rows_match(jsonl(result.stdout), expected_rows(predictor, ids, texts))
    assert summary_of(result) == "50 input rows = 50 scored + 0 errors"


def test_jsonl_fields_by_name_ids_passed_through_and_blank_lines_ignored(onnx_dir, predictor, tmp_path):
    records = ['{"review": "great film", "review_id": "a-1"}', "", '{"review": "dull plot", "review_id": 7}', "  "]
    source = write_jsonl(tmp_path / "in.data", records)
    result = run_predict(onnx_dir, str(source), "--text-field", "review", "--id-field", "review_id")
    assert result.exit_code == 0, result.output
    assert_rows_match(jsonl(result.stdout), expected_rows(predictor, ["a-1", 7], ["great film", "dull plot"]))
    assert summary_of(result) == "2 input rows = 2 scored + 0 errors; 2 blank lines ignored"


def test_csv_input_with_quoting_and_csv_output_file(onnx_dir, predictor, tmp_path):
    source = tmp_path / "reviews.csv"
    source.write_text('id,review\nr1,"great, great film"\nr2,"dull\nplot, two lines"\nr3,awful\n')
    out = tmp_path / "out" / "predictions.csv"
    result = run_predict(
        onnx_dir, str(source), "--text-field", "review", "--id-field", "id", "--format", "csv", "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"wrote {out}" in result.stderr
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["id", "label", "score", "prob_negative", "prob_positive"]
    expected = expected_rows(predictor, ["r1", "r2", "r3"], ["great, great film", "dull\nplot, two lines", "awful"])
    assert_rows_match([{**row, **{k: float(row[k]) for k in list(row)[2:]}} for row in rows], expected)


def test_csv_ids_default_to_the_line_a_row_starts_on(onnx_dir, tmp_path):
    source = tmp_path / "reviews.csv"
    source.write_text('text\n"two\nlines"\nthird row\n')
    result = run_predict(onnx_dir, str(source))
    assert result.exit_code == 0, result.output
    assert [row["id"] for row in jsonl(result.stdout)] == ["reviews.csv:2", "reviews.csv:4"]


def test_plain_text_one_review_per_line(onnx_dir, predictor, tmp_path):
    source = tmp_path / "reviews.txt"
    source.write_text("great film\r\n\nawful plot\n{not json, just a review}\n")
    result = run_predict(onnx_dir, str(source))
    assert result.exit_code == 0, result.output
    texts = ["great film", "awful plot", "{not json, just a review}"]
    assert_rows_match(
        jsonl(result.stdout), expected_rows(predictor, ["reviews.txt:1", "reviews.txt:3", "reviews.txt:4"], texts)
    )


@pytest.mark.parametrize(
    ("payload", "extra", "ids"),
    [
        (b'{"text": "great film"}\n{"text": "awful"}\n', [], [1, 2]),  # JSONL sniffed from '{'
        (b"great film\nawful\n", [], [1, 2]),  # plain text
        (b"text\ngreat film\nawful\n", ["--input-format", "csv"], [2, 3]),
    ],
)
def test_stdin_plain_and_gzipped(onnx_dir, predictor, payload, extra, ids):
    for data in (payload, gzip.compress(payload)):
        result = run_predict(onnx_dir, "-", *extra, input=data)
        assert result.exit_code == 0, result.output
        assert_rows_match(jsonl(result.stdout), expected_rows(predictor, ids, ["great film", "awful"]))


def test_gzip_file_in_and_out(onnx_dir, predictor, tmp_path):
    source = tmp_path / "reviews.jsonl.gz"
    source.write_bytes(gzip.compress(b'{"text": "great film"}\n{"text": "awful"}\n'))
    out = tmp_path / "predictions.jsonl.gz"
    result = run_predict(onnx_dir, str(source), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert_rows_match(
        jsonl(gzip.decompress(out.read_bytes()).decode()),
        expected_rows(predictor, ["reviews.jsonl.gz:1", "reviews.jsonl.gz:2"], ["great film", "awful"]),
    )


# Each bad row: file name, content (bytes), extra options, the line that is bad, reason, fix.
BAD_INPUTS = {
    "malformed JSON": (
        "in.jsonl",
        b'{"text": "fine"}\n{"text": "broken\n{"text": "also fine"}\n',
        [],
        2,
        "not valid JSON (Unterminated string starting at column 10)",
        "fix or remove the line",
    ),
    "not an object": (
        "in.jsonl",
        b'{"text": "fine"}\n["a list"]\n{"text": "also fine"}\n',
        [],
        2,
        "expected a JSON object, got an array",
        'write one object per line, e.g. {"text": "..."}',
    ),
    "missing field": (
        "in.jsonl",
        b'{"text": "fine"}\n{"body": "x", "id": 2}\n{"text": "also fine"}\n',
        [],
        2,
        "field 'text' missing (fields here: 'body', 'id')",
        "use --text-field to name another field",
    ),
    "missing id field": (
        "in.jsonl",
        b'{"text": "fine", "id": 1}\n{"text": "x"}\n{"text": "also fine", "id": 3}\n',
        ["--id-field", "id"],
        2,
        "field 'id' missing",
        "use --id-field to name another field, or leave it out to use file:line ids",
    ),
    "number text": (
        "in.jsonl",
        b'{"text": "fine"}\n{"text": 5}\n{"text": "also fine"}\n',
        [],
        2,
        "field 'text' is a number, not a string",
        "give the review as text",
    ),
    "null text": (
        "in.jsonl",
        b'{"text": "fine"}\n{"text": null}\n{"text": "also fine"}\n',
        [],
        2,
        "field 'text' is null, not a string",
        "give the review as text",
    ),
    "empty text": (
        "in.jsonl",
        b'{"text": "fine"}\n{"text": "  "}\n{"text": "also fine"}\n',
        [],
        2,
        "field 'text' is empty",
        "remove the row or give it a review",
    ),
    "invalid UTF-8 in JSONL": (
        "in.jsonl",
        b'{"text": "fine"}\n{"text": "caf\xe9"}\n{"text": "also fine"}\n',
        [],
        2,
        "invalid UTF-8 (byte 0xe9 at byte 14)",
        "re-save the file as UTF-8",
    ),
    "invalid UTF-8 in text": (
        "in.txt",
        b"fine\n\xff\xfe\nalso fine\n",
        [],
        2,
        "invalid UTF-8 (byte 0xff at byte 1)",
        "re-save the file as UTF-8",
    ),
    "invalid UTF-8 in CSV": (
        "in.csv",
        b"text\nfine\ncaf\xe9\nalso fine\n",
        [],
        3,
        "invalid UTF-8 (byte 0xe9 at byte 4)",
        "re-save the file as UTF-8",
    ),
    "empty CSV value": (
        "in.csv",
        b"id,text\n1,fine\n2,\n3,also fine\n",
        [],
        3,
        "column 'text' is empty",
        "remove the row or give it a review",
    ),
    "short CSV row": (
        "in.csv",
        b"id,text\n1,fine\n2\n3,also fine\n",
        [],
        3,
        "column 'text' missing (the row has 1 of 2 columns)",
        "quote values that contain commas",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_row_fails_with_line_and_fix_and_leaves_no_output(onnx_dir, tmp_path, case):
    name, content, extra, line, reason, fix = BAD_INPUTS[case]
    source = tmp_path / name
    source.write_bytes(content)
    out = tmp_path / "predictions.jsonl"
    result = run_predict(onnx_dir, str(source), *extra, "-o", str(out))
    assert result.exit_code == 1
    assert result.stderr == f"Error: {source}, line {line}: {reason}; {fix} {SKIP_HINT}\n"
    assert list(tmp_path.iterdir()) == [source]  # no output, no temporary file left behind


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_row_skipped_to_errors_file_and_the_rest_scored(onnx_dir, tmp_path, case):
    name, content, extra, line, reason, fix = BAD_INPUTS[case]
    source = tmp_path / name
    source.write_bytes(content)
    out, errors = tmp_path / "predictions.jsonl", tmp_path / "errors.jsonl"
    result = run_predict(onnx_dir, str(source), *extra, "--on-error", "skip", "--errors", str(errors), "-o", str(out))
    assert result.exit_code == 0, result.output
    [error] = jsonl(errors.read_text())
    # The bad row keeps its id: the default `id` field or column where it has one, else FILE:LINE.
    row_id = {"missing field": 2, "empty CSV value": "2", "short CSV row": "2"}.get(case, f"{name}:{line}")
    assert error == {"file": str(source), "line": line, "id": row_id, "reason": reason, "fix": fix}
    rows = jsonl(out.read_text())
    assert len(rows) == 2
    assert row_id not in [row["id"] for row in rows]
    assert summary_of(result) == f"3 input rows = 2 scored + 1 error; errors in {errors}"


def test_skip_without_errors_file_lists_bad_rows_on_stderr(onnx_dir, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", ['{"text": "fine"}', "nope", '{"text": 1}'])
    result = run_predict(onnx_dir, str(source), "--on-error", "skip")
    assert result.exit_code == 0, result.output
    assert [row["id"] for row in jsonl(result.stdout)] == ["in.jsonl:1"]
    assert f"skipped {source}, line 2: not valid JSON (Expecting value at column 1)\n" in result.stderr
    assert f"skipped {source}, line 3: field 'text' is a number, not a string\n" in result.stderr
    assert summary_of(result) == "3 input rows = 1 scored + 2 errors"


@pytest.mark.parametrize("on_error", [[], ["--on-error", "skip"]])
def test_csv_without_the_named_column_fails_even_when_skipping(onnx_dir, tmp_path, on_error):
    source = tmp_path / "in.csv"
    source.write_text("id,review\n1,fine\n")
    out = tmp_path / "predictions.jsonl"
    result = run_predict(onnx_dir, str(source), *on_error, "-o", str(out))
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {source}, line 1: no column 'text' in the CSV header (columns: 'id', 'review'); "
        "use --text-field to name the column\n"
    )
    assert not out.exists()


def test_a_late_bad_row_leaves_no_partial_output(onnx_dir, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": f"fine film {i}"} for i in range(50)] + ["{oops"])
    out = tmp_path / "predictions.jsonl"
    out.write_text("old predictions\n")
    result = run_predict(onnx_dir, str(source), "--chunk-size", "8", "-o", str(out))
    assert result.exit_code == 1
    assert "line 51: not valid JSON" in result.stderr
    assert out.read_text() == "old predictions\n"  # untouched: written completely or not at all
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "predictions.jsonl"]


def test_usage_and_missing_input_errors(onnx_dir, tmp_path):
    result = run_predict(onnx_dir, "in.jsonl", "--errors", str(tmp_path / "e.jsonl"))
    assert result.exit_code == 2
    assert "--errors needs --on-error skip" in result.stderr
    missing = tmp_path / "missing.jsonl"
    result = run_predict(onnx_dir, str(missing))
    assert result.exit_code == 1
    assert result.stderr == f"Error: {missing}: no such file or folder\n"


def test_truncated_gzip_is_a_clear_error(onnx_dir, tmp_path):
    source = tmp_path / "in.jsonl.gz"
    source.write_bytes(gzip.compress(b'{"text": "great film"}\n' * 200)[:-30])
    result = run_predict(onnx_dir, str(source))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {source}: cannot read it (Compressed file ended before the end-of-stream")


class PeakRss:
    """Samples this process's resident memory (imdb_deploy.machine) every few milliseconds while the block runs."""

    def __enter__(self):
        import threading

        self.start = self.peak = resident_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, resident_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, resident_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.start


def test_100k_rows_stream_with_flat_memory(onnx_dir, tmp_path):
    """Resident memory grows by a few MB for 100,000 rows; holding them all would take ~50 MB more."""
    from imdb_deploy.engines.config import PredictFileConfig
    from imdb_deploy.engines.local import predict_file
    from imdb_deploy.runtimes.predictor import Predictor

    predictor = Predictor(onnx_dir)
    config = PredictFileConfig(progress=False)
    for n in (2_000, 100_000):  # the small run warms up allocator pools and onnxruntime's arena
        source = tmp_path / f"in-{n}.txt"
        source.write_text("good film\n" * n)
        out = tmp_path / f"out-{n}.jsonl"
        with PeakRss() as rss:
            summary = predict_file(predictor, source, output=out, config=config)
        assert summary.input_rows == summary.scored == n
    with out.open() as f:
        assert sum(1 for _ in f) == 100_000
    assert rss.growth < 20 * 2**20, f"resident memory grew by {rss.growth / 2**20:.1f} MiB"


def test_per_review_variant_scores_reviews_side_by_side_with_the_same_answers(tiny_onnx_dir):
    """The default INT8 runs one review per call, several calls at once: same logits as one at a time."""
    from imdb_deploy.runtimes.predictor import Predictor

    texts = [f"review {i} " + "good " * (i % 17) + "bad " * (i % 5) for i in range(40)]
    side_by_side = Predictor(tiny_onnx_dir, threads=2)
    one_at_a_time = Predictor(tiny_onnx_dir, threads=1)
    assert side_by_side.batching.per_review and (side_by_side.workers, one_at_a_time.workers) == (2, 1)
    assert side_by_side.describe()["workers"] == 2
    together = side_by_side.logits(texts)
    assert np.array_equal(together, one_at_a_time.logits(texts))
    alone = np.concatenate([side_by_side.logits([text]) for text in texts])
    assert np.array_equal(together, alone)


def test_a_per_review_predictor_is_safe_to_call_from_several_threads(tiny_onnx_dir):
    """serve runs several batches at once on one Predictor: lone reviews from two threads must not share
    buffers (each call pads into arrays of its own), so every answer is the one it gets alone."""
    from concurrent.futures import ThreadPoolExecutor

    from imdb_deploy.runtimes.predictor import Predictor

    predictor = Predictor(tiny_onnx_dir, threads=2)
    encoded = predictor.encode([f"take {i} " + "good " * (i % 29) + "dull " * (i % 7) for i in range(300)])
    alone = np.concatenate([predictor.logits_from_ids([ids]) for ids in encoded])
    with ThreadPoolExecutor(4) as pool:
        together = np.concatenate(list(pool.map(lambda ids: predictor.logits_from_ids([ids]), encoded)))
    assert np.array_equal(together, alone)


# --- several inputs, Parquet, ids -------------------------------------------------------------------------


def test_folders_globs_and_files_are_read_in_order_with_file_line_ids(onnx_dir, predictor, tmp_path):
    import pandas as pd

    data = tmp_path / "data"
    (data / "2024").mkdir(parents=True)
    pd.DataFrame({"text": ["great film", "awful plot"]}).to_parquet(data / "2024" / "part-0.parquet")
    write_jsonl(data / "b.jsonl", [{"text": "dull"}])
    (data / "_SUCCESS").write_text("")  # markers and hidden files are not inputs
    (data / ".part-9.parquet.crc").write_text("x")
    extra = tmp_path / "extra.csv"
    extra.write_text("text\nloved it\n")
    result = run_predict(onnx_dir, str(data), str(extra), "--chunk-size", "1")
    assert result.exit_code == 0, result.output
    ids = ["data/2024/part-0.parquet:1", "data/2024/part-0.parquet:2", "data/b.jsonl:1", "extra.csv:2"]
    texts = ["great film", "awful plot", "dull", "loved it"]
    assert_rows_match(jsonl(result.stdout), expected_rows(predictor, ids, texts))
    assert summary_of(result) == "3 files: 4 input rows = 4 scored + 0 errors"

    result = run_predict(onnx_dir, str(data / "**" / "*.parquet"), f"file://{data / 'b.jsonl'}")
    assert result.exit_code == 0, result.output
    assert [row["id"] for row in jsonl(result.stdout)] == [
        "2024/part-0.parquet:1",
        "2024/part-0.parquet:2",
        "b.jsonl:1",
    ]


def test_id_column_or_field_is_carried_by_default(onnx_dir, tmp_path):
    import pandas as pd

    pd.DataFrame({"id": [10, 11], "text": ["great film", "awful plot"]}).to_parquet(tmp_path / "a.parquet")
    write_jsonl(tmp_path / "b.jsonl", [{"id": "x-1", "text": "dull"}, {"text": "no id here"}])
    (tmp_path / "c.csv").write_text("id,text\nc1,fine\n")
    result = run_predict(onnx_dir, str(tmp_path / "a.parquet"), str(tmp_path / "b.jsonl"), str(tmp_path / "c.csv"))
    assert result.exit_code == 0, result.output
    assert [row["id"] for row in jsonl(result.stdout)] == [10, 11, "x-1", "b.jsonl:2", "c1"]
    result = run_predict(onnx_dir, str(tmp_path / "a.parquet"), "--id-field", "text")
    assert [row["id"] for row in jsonl(result.stdout)] == ["great film", "awful plot"]


def test_parquet_streams_by_record_batch_and_checks_rows(onnx_dir, predictor, tmp_path):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = tmp_path / "reviews.parquet"
    texts, _ = toy_reviews(30, seed=8)
    pq.write_table(pa.table({"text": texts[:29] + [None]}), source, row_group_size=7)
    result = run_predict(onnx_dir, str(source), "--on-error", "skip", "--chunk-size", "4")
    assert result.exit_code == 0, result.output
    ids = [f"reviews.parquet:{row}" for row in range(1, 30)]
    assert_rows_match(jsonl(result.stdout), expected_rows(predictor, ids, texts[:29]))
    assert "skipped " + str(source) + ", row 30: column 'text' is null, not a string" in result.stderr
    result = run_predict(onnx_dir, str(source))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {source}, row 30: column 'text' is null, not a string; give the review")

    pd.DataFrame({"review": ["fine"], "stars": [3]}).to_parquet(tmp_path / "other.parquet")
    result = run_predict(onnx_dir, str(tmp_path / "other.parquet"))
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {tmp_path / 'other.parquet'}: no column 'text' (columns: 'review', 'stars'); "
        "use --text-field to name the column\n"
    )


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            ["{tmp}/*.jsonl"],
            "{tmp}/*.jsonl: the pattern matches no file; check it (and quote it so the shell leaves it)",
        ),
        (["{tmp}/empty"], "{tmp}/empty: no readable file in this folder"),
        (["-", "{tmp}/a.txt"], "- (stdin) cannot be combined with other inputs"),
        (["file://{tmp}/nothing.jsonl"], "file://{tmp}/nothing.jsonl: no such file or folder"),
    ],
)
def test_inputs_that_name_nothing_are_clear_errors(onnx_dir, tmp_path, inputs, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a.txt").write_text("fine\n")
    result = run_predict(onnx_dir, *(item.format(tmp=tmp_path) for item in inputs))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: " + message.format(tmp=tmp_path))


def test_parquet_rows_get_the_review_cap_and_non_finite_ids_are_bad_rows(onnx_dir, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from imdb_deploy.reviews import MAX_REVIEW_BYTES

    source = tmp_path / "reviews.parquet"
    texts = ["great film", "awful plot", "x" * (MAX_REVIEW_BYTES + 1), "fine"]
    pq.write_table(pa.table({"id": [1.0, float("nan"), 3.0, float("inf")], "text": texts}), source)
    errors = tmp_path / "bad.jsonl"
    result = run_predict(onnx_dir, str(source), "--on-error", "skip", "--errors", str(errors))
    assert result.exit_code == 0, result.output
    assert [row["id"] for row in jsonl(result.stdout)] == [1.0]
    bad = jsonl(errors.read_text())  # json.loads accepts NaN: check the text too
    assert "NaN" not in errors.read_text() and "Infinity" not in errors.read_text()
    assert [(row["line"], row["id"]) for row in bad] == [(2, None), (3, 3.0), (4, None)]
    assert bad[0]["reason"] == "column 'id' is nan, which is not a valid JSON number"
    assert bad[1]["reason"].startswith(f"column 'text' is {MAX_REVIEW_BYTES + 1:,} bytes, over the limit")


def test_outputs_inside_an_input_folder_are_refused(onnx_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("great film\n")
    for args, expected in (
        (["-o", str(data / "a.txt")], f"--output {str(data / 'a.txt')!r} is the input"),
        (["-o", str(data / "out.jsonl")], f"--output {str(data / 'out.jsonl')!r} is inside the input {str(data)!r}"),
        (
            ["--on-error", "skip", "--errors", str(data / "bad.jsonl")],
            f"--errors {str(data / 'bad.jsonl')!r} is inside the input {str(data)!r}",
        ),
    ):
        result = run_predict(onnx_dir, f"file://{data}", *args)
        assert result.exit_code == 1
        assert result.stderr.startswith("Error: " + expected), result.stderr
    assert sorted(path.name for path in data.iterdir()) == ["a.txt"] and (data / "a.txt").read_text() == "great film\n"
