"""`imdb-deploy serve` against a real uvicorn server on a free 127.0.0.1 port, with a real HTTP client (httpx).

The model is the tiny fp32 export; where a test needs requests to be queued, the model thread is held at a
gate (a threading.Event, or a file for the subprocess) so the test is deterministic, never a matter of timing.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from conftest import toy_reviews

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

# fp32 probabilities may differ only by float rounding between batchings (other padding, other call shapes).
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def onnx_dir(tiny_onnx_dir):
    return tiny_onnx_dir


@pytest.fixture(scope="module")
def reference(onnx_dir):
    """The offline answer every server answer must equal."""
    from imdb_deploy.runtimes.predictor import Predictor

    return Predictor(onnx_dir, variant="fp32")


class Gated:
    """A Predictor whose model calls wait while the gate is closed, and fail on a poisoned token id."""

    def __init__(self, inner, poison_id: int | None = None) -> None:
        self.inner = inner
        self.poison_id = poison_id
        self.gate = threading.Event()
        self.gate.set()
        self.held: list[int] = []  # sizes of the calls waiting at the closed gate

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def logits_from_ids(self, encoded):
        if not self.gate.is_set():
            self.held.append(len(encoded))
            assert self.gate.wait(30), "the test never opened the gate"
        if self.poison_id is not None and any(self.poison_id in ids for ids in encoded):
            raise RuntimeError("poisoned review")
        return self.inner.logits_from_ids(encoded)


def make_app(onnx_dir, poison_id=None, variant="fp32", **limits):
    from imdb_deploy.runtimes.predictor import Predictor
    from imdb_deploy.serve.app import create_app
    from imdb_deploy.serve.config import ServeConfig

    predictor = Gated(Predictor(onnx_dir, variant=variant, threads=2), poison_id)
    return create_app(predictor, ServeConfig(access_log=False, **limits), onnx_dir), predictor


@contextmanager
def running(app):
    """uvicorn serving `app` in a thread on a free port of 127.0.0.1; yields the base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    from imdb_deploy.serve.http import uvicorn_config

    config = app.state.service.config
    server = uvicorn.Server(uvicorn_config(app, config, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def metric_values(base_url: str) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics, parsed by prometheus_client's own parser: (name, sorted labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def wait_until(condition, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def assert_answers_equal(answers, texts, reference) -> None:
    expected = reference.predict(texts)
    assert len(answers) == len(expected)
    for got, want in zip(answers, expected, strict=True):
        assert got["label"] == want.label
        assert set(got["probabilities"]) == set(want.probabilities)
        for name, p in want.probabilities.items():
            assert abs(got["probabilities"][name] - p) <= TOLERANCE
        assert abs(got["score"] - want.score) <= TOLERANCE


async def _post_all(base_url: str, bodies: list) -> list[httpx.Response]:
    """Post every body at once, asking for our detailed answer (label, score, probabilities, variant)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        return await asyncio.gather(*(client.post("/predict", json=detailed(body)) for body in bodies))


def detailed(body: dict) -> dict:
    """`body` asking for our detailed answer, a list of reviews sent as TEI's batch [["a"], ["b"]]."""
    inputs = body["inputs"]
    return {**body, "inputs": [[t] for t in inputs] if isinstance(inputs, list) else inputs, "details": True}


def test_concurrent_clients_get_their_own_answers_in_order_from_shared_batches(onnx_dir, reference):
    app, model = make_app(onnx_dir)
    texts, _ = toy_reviews(60, seed=11, min_words=1, max_words=120)  # some past max_length 64: cut, not refused
    bodies = [{"inputs": texts[0]}]  # one single-string request, then lists of 1..5 reviews
    start = 1
    for size in (3, 1, 5, 2, 4, 5, 1, 3):
        bodies.append({"inputs": texts[start : start + size]})
        start += size
    total = sum(1 if isinstance(b["inputs"], str) else len(b["inputs"]) for b in bodies)
    with running(app) as url:
        model.gate.clear()  # hold the model: every request is admitted and queued before any is answered
        result: list = []
        thread = threading.Thread(target=lambda: result.extend(asyncio.run(_post_all(url, bodies))))
        thread.start()

        queued: list[float] = []

        def all_queued() -> bool:
            queued.append(metric_values(url)[("imdb_deploy_queue_reviews", ())])
            return queued[-1] + sum(model.held) == total

        wait_until(all_queued, "every review to be queued")
        model.gate.set()
        thread.join(30)
        assert [r.status_code for r in result] == [200] * len(bodies)
        single = result[0].json()
        assert isinstance(single, dict)  # a single string gets one object back
        assert_answers_equal([single], [texts[0]], reference)
        for body, response in zip(bodies[1:], result[1:], strict=True):
            assert_answers_equal(response.json(), body["inputs"], reference)
        # The reviews of 9 requests went to the model in at most 2 batches: the one held at the gate, and
        # one with every review queued behind it.
        values = metric_values(url)
        assert len(model.held) == 1
        assert values[("imdb_deploy_batch_reviews_count", ())] == 1 + (queued[-1] > 0)
        assert values[("imdb_deploy_batch_reviews_sum", ())] == total
        assert values[("imdb_deploy_reviews_scored_total", ())] == total

        # Free-running: 40 concurrent requests of one review each, answers in order.
        more, _ = toy_reviews(40, seed=12, min_words=1, max_words=60)
        responses = asyncio.run(_post_all(url, [{"inputs": [text]} for text in more]))
        assert [r.status_code for r in responses] == [200] * 40
        assert_answers_equal([r.json()[0] for r in responses], more, reference)


def test_overload_gets_429_with_retry_after_and_the_server_recovers(onnx_dir, reference):
    app, model = make_app(onnx_dir, max_concurrent_requests=4, max_client_batch_size=4)
    texts, _ = toy_reviews(4, seed=13)
    with running(app) as url:
        model.gate.clear()
        result: list = []
        thread = threading.Thread(
            target=lambda: result.extend(asyncio.run(_post_all(url, [{"inputs": t} for t in texts])))
        )
        thread.start()
        wait_until(lambda: metric_values(url)[("imdb_deploy_in_flight_reviews", ())] == 4, "4 reviews in flight")
        for body in ({"inputs": "One more."}, {"inputs": [["Two"], ["more."]]}):
            refused = httpx.post(f"{url}/predict", json=body, timeout=10)
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["error_type"] == "Overloaded"
            assert "max_concurrent_requests=4" in refused.json()["error"]
        model.gate.set()
        thread.join(30)
        assert [r.status_code for r in result] == [200] * 4
        assert_answers_equal([r.json() for r in result], texts, reference)
        again = httpx.post(f"{url}/predict", json={"inputs": "One more."}, timeout=10)
        assert again.status_code == 200
        counts = metric_values(url)
        assert counts[("imdb_deploy_http_requests_total", (("route", "/predict"), ("status", "429")))] == 2


BAD_BODIES = [
    (b'{"inputs": "unclosed', 422, "body: malformed JSON"),
    (b'{"inputs": "caf\xff"}', 422, "body: not UTF-8"),
    (b"[1, 2]", 422, "expected a JSON object"),
    (b'{"text": "a review"}', 422, "inputs: field missing"),
    (b'{"inputs": "x", "truncate": "yes"}', 422, "truncate: expected true or false, got a string"),
    (b'{"inputs": "x", "truncation_direction": "up"}', 422, "truncation_direction: 'up'"),
    (b'{"inputs": ["a review", "another"]}', 422, "is a pair of texts"),
    (b'{"inputs": [["a review", "another"]]}', 422, "inputs[0]: a pair of texts"),
    (b"{}", 422, "inputs: field missing"),
    (b'{"inputs": null}', 422, "inputs: expected a string, a list of strings or a batch [[string], ...], got null"),
    (b'{"inputs": 5}', 422, "got a number"),
    (b'{"inputs": []}', 422, "inputs: empty array"),
    (b'{"inputs": ["good film", 3]}', 422, "inputs[1]: expected a string, got a number"),
    (b'{"inputs": ["good film", {"text": "x"}]}', 422, "inputs[1]: expected a string, got an object"),
    (b'{"inputs": ["good film", "fine", ""]}', 400, "inputs[2]: empty text"),
    (b'{"inputs": "   "}', 400, "inputs: empty text"),
    # Empty once the tokenizer drops control and zero-width characters: refused like blank, as predict does.
    (json.dumps({"inputs": "\u200b\ufeff\u0007"}).encode(), 400, "inputs: empty text"),
    (b'{"inputs": ["good", "fine", "bad \\ud800"]}', 422, "inputs[2]: not valid Unicode"),
    (b'{"inputs": ' + b"[" * 1500 + b"]" * 1500 + b"}", 422, "nested too deeply"),
    (json.dumps({"inputs": ["a", "b", "c", "d"]}).encode(), 422, "batch size 4 > maximum allowed batch size 3"),
    (
        json.dumps({"inputs": [["good"], ["great " * 200]]}).encode(),
        413,
        "inputs[1][0]: 1,200 bytes, more than max_review_bytes",
    ),
    # The item types are checked before the count: a malformed body is 422 for what is wrong with it.
    (json.dumps({"inputs": ["good film"] * 3 + [5]}).encode(), 422, "inputs[3]: expected a string, got a number"),
    (json.dumps({"inputs": "good " * 1000}).encode(), 413, "body: over the payload limit of 4,000 bytes"),
]


def test_every_bad_body_gets_a_4xx_naming_the_field_or_the_limit(onnx_dir, reference):
    app, _ = make_app(onnx_dir, max_client_batch_size=3, max_body_bytes=4000, max_review_bytes=1000)
    with running(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        for body, status, message in BAD_BODIES:
            response = client.post("/predict", content=body, headers={"content-type": "application/json"})
            assert response.status_code == status, (body[:40], response.text)
            assert message in response.json()["error"], (body[:40], response.text)

        def chunks():  # no Content-Length: the limit is enforced while the body streams in
            yield b'{"inputs": "'
            for _ in range(100):
                yield b"good " * 10
            yield b'"}'

        streamed = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413 and "payload limit" in streamed.json()["error"]
        # A long review under the byte limit is cut exactly as in training, not refused.
        long_review = "the movie was great and " * 35
        assert len(reference.encode([long_review])[0]) == reference.settings.max_length
        ok = client.post("/predict", json=detailed({"inputs": [long_review, "dull"]}))
        assert ok.status_code == 200
        assert_answers_equal(ok.json(), [long_review, "dull"], reference)
        values = metric_values(url)
        assert values[("imdb_deploy_http_requests_total", (("route", "/predict"), ("status", "422")))] == sum(
            status == 422 for _, status, _ in BAD_BODIES
        )


@pytest.mark.parametrize(("max_batch_size", "in_flight"), [(None, 2), (1, 1)])
def test_a_per_review_variant_keeps_both_workers_busy_across_batches(onnx_dir, max_batch_size, in_flight):
    """The default INT8 runs each review in its own call on the Predictor's 2 threads, so 2 batches may be in
    flight (no core idles at a batch's end) and the answers stay bit-identical; batching off is one at a time."""
    from imdb_deploy.runtimes.predictor import Predictor

    app, model = make_app(onnx_dir, variant="int8", max_batch_size=max_batch_size)
    texts, _ = toy_reviews(6, seed=5, min_words=3, max_words=40)
    with running(app) as url:
        assert httpx.get(f"{url}/info", timeout=10).json()["batching"]["batches_in_flight"] == in_flight
        model.gate.clear()
        first: list = []
        holder = threading.Thread(target=lambda: first.extend(asyncio.run(_post_all(url, [{"inputs": texts[0]}]))))
        holder.start()
        wait_until(lambda: model.held == [1], "the first review to reach the model")
        rest: list = []
        bodies = [{"inputs": text} for text in texts[1:]]
        thread = threading.Thread(target=lambda: rest.extend(asyncio.run(_post_all(url, bodies))))
        thread.start()

        def settled() -> bool:
            queued = metric_values(url)[("imdb_deploy_queue_reviews", ())]
            return len(model.held) == in_flight and queued + sum(model.held) == len(texts)

        wait_until(settled, f"{in_flight} batches at the model and the rest queued")
        time.sleep(0.3)  # room for a batch too many to start
        assert len(model.held) == in_flight
        model.gate.set()
        holder.join(30)
        thread.join(30)
    result = first + rest
    assert [r.status_code for r in result] == [200] * len(texts)
    want = Predictor(onnx_dir, variant="int8").predict_proba(texts)
    got = [[r.json()["probabilities"][label] for label in model.label_names] for r in result]
    assert got == want.astype(float).tolist()  # one review per call: the same bits whatever ran beside it


def test_a_failing_batch_fails_only_its_own_request(onnx_dir, reference):
    poison = reference.tokenizer.convert_tokens_to_ids("hated")
    app, model = make_app(onnx_dir, poison_id=poison)
    with running(app) as url:
        model.gate.clear()
        first: list = []
        holder = threading.Thread(target=lambda: first.extend(asyncio.run(_post_all(url, [{"inputs": "good"}]))))
        holder.start()
        wait_until(lambda: model.held == [1], "the first request to reach the model")
        bodies = [{"inputs": "great film"}, {"inputs": ["fine", "hated it"]}, {"inputs": ["superb", "dull"]}]
        rest: list = []
        thread = threading.Thread(target=lambda: rest.extend(asyncio.run(_post_all(url, bodies))))
        thread.start()
        wait_until(lambda: metric_values(url)[("imdb_deploy_queue_reviews", ())] == 5, "5 reviews queued")
        model.gate.set()
        holder.join(30)
        thread.join(30)
        assert first[0].status_code == 200
        # One batch failed; its other requests were retried alone (424: TEI's status for a backend error).
        assert [r.status_code for r in rest] == [200, 424, 200]
        assert "poisoned review" in rest[1].json()["error"]
        assert_answers_equal([rest[0].json()], ["great film"], reference)
        assert_answers_equal(rest[2].json(), ["superb", "dull"], reference)
        after = httpx.post(f"{url}/predict", json={"inputs": "good"}, timeout=10)
        assert after.status_code == 200
        assert metric_values(url)[("imdb_deploy_batch_failures_total", ())] == 1


def test_a_tokenizer_failure_fails_only_its_request(onnx_dir, monkeypatch):
    from imdb_deploy.serve import batcher as serve

    app, model = make_app(onnx_dir)
    real_encode = serve.encode

    def encode(tokenizer, texts, settings):
        if "explode" in texts:
            raise ValueError("the tokenizer broke")
        return real_encode(tokenizer, texts, settings)

    monkeypatch.setattr(serve, "encode", encode)
    with running(app) as url:
        broken = httpx.post(f"{url}/predict", json={"inputs": [["good"], ["explode"]]}, timeout=10)
        assert broken.status_code == 500
        assert "ValueError: the tokenizer broke" in broken.json()["error"]
        assert httpx.post(f"{url}/predict", json={"inputs": "good"}, timeout=10).status_code == 200


def test_health_info_metrics_and_openapi(onnx_dir):
    from prometheus_client.parser import text_string_to_metric_families

    app, _ = make_app(onnx_dir, max_client_batch_size=8)
    with running(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/health").json() == {"status": "ok"}
        info = client.get("/info").json()
        assert info["model_dir"] == Path(onnx_dir).resolve().name  # no absolute path without --info-details
        assert str(Path(onnx_dir).resolve()) not in client.get("/info").text and "versions" not in info
        assert info["variant"] == "fp32" and info["model_file"] == "model.onnx"
        assert info["batch_invariant"] is True and info["predictor"]["per_review"] is False
        assert info["labels"] == ["negative", "positive"]
        assert (info["max_length"], info["truncation"]) == (64, "head+tail")
        assert info["batching"]["max_batch_tokens"] == 16384
        assert info["limits"]["max_client_batch_size"] == 8
        assert info["limits"]["max_concurrent_requests"] == 512
        assert info["parity"] == {"verified": False, "reason": "exported without the parity gate (--no-verify)"}
        assert client.post("/predict", json={"inputs": [["good"], ["bad"]]}).status_code == 200
        assert client.get("/nowhere").status_code == 404

        text = client.get("/metrics").text
        families = {family.name: family for family in text_string_to_metric_families(text)}
        for name in (
            "imdb_deploy_http_requests",
            "imdb_deploy_http_request_duration_seconds",
            "imdb_deploy_queue_reviews",
            "imdb_deploy_in_flight_reviews",
            "imdb_deploy_batch_reviews",
            "imdb_deploy_batch_padded_tokens",
            "imdb_deploy_reviews_scored",
        ):
            assert name in families, name
        values = metric_values(url)
        assert values[("imdb_deploy_http_requests_total", (("route", "/health"), ("status", "200")))] == 1
        assert values[("imdb_deploy_http_requests_total", (("route", "other"), ("status", "404")))] == 1
        assert values[("imdb_deploy_reviews_scored_total", ())] == 2  # the probe runs beside the batcher
        assert values[("imdb_deploy_http_request_duration_seconds_count", (("route", "/predict"),))] == 1

        schema = client.get("/openapi.json").json()
        body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert "inputs" in body["properties"]
        assert {"413", "422", "429"} <= set(schema["paths"]["/predict"]["post"]["responses"])
        page = client.get("/docs").text
        assert "swagger" in page.lower() and "cdn" not in page  # Swagger UI from the installed package
        assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_health_is_503_when_the_model_does_not_answer(onnx_dir):
    app, model = make_app(onnx_dir, health_timeout_s=0.3)
    with running(app) as url:
        model.gate.clear()
        try:
            response = httpx.get(f"{url}/health", timeout=10)
            assert response.status_code == 503
            assert "not scored within 0.3 s" in response.json()["error"]
        finally:
            model.gate.set()
        wait_until(lambda: httpx.get(f"{url}/health", timeout=10).status_code == 200, "health to recover")


SERVER_SCRIPT = """
import os, sys, time
from imdb_deploy.runtimes.predictor import Predictor
from imdb_deploy.serve import ServeConfig, serve

class HeldWhileFileExists:
    def __init__(self, inner, hold):
        self.inner, self.hold = inner, hold
    def __getattr__(self, name):
        return getattr(self.inner, name)
    def logits_from_ids(self, encoded):
        while os.path.exists(self.hold):
            time.sleep(0.01)
        return self.inner.logits_from_ids(encoded)

onnx_dir, port, hold = sys.argv[1], int(sys.argv[2]), sys.argv[3]
predictor = HeldWhileFileExists(Predictor(onnx_dir, variant="fp32"), hold)
serve(onnx_dir, ServeConfig(port=port, access_log=False), predictor=predictor)
print("served and drained", flush=True)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_drains_every_queued_request_then_exits_0(onnx_dir, reference, tmp_path, sig):
    script = tmp_path / "server.py"
    script.write_text(SERVER_SCRIPT)
    hold = tmp_path / "hold"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(onnx_dir), str(port), str(hold)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:

        def healthy() -> bool:
            assert proc.poll() is None, proc.stderr.read()
            try:
                return httpx.get(f"{url}/health", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, "the server to start", timeout=60)
        hold.touch()
        texts, _ = toy_reviews(6, seed=14)
        bodies = [{"inputs": texts[:1]}, {"inputs": texts[1:4]}, {"inputs": texts[4:]}]
        result: list = []
        thread = threading.Thread(target=lambda: result.extend(asyncio.run(_post_all(url, bodies))))
        thread.start()
        wait_until(lambda: metric_values(url)[("imdb_deploy_in_flight_reviews", ())] == 6, "6 reviews in flight")
        proc.send_signal(sig)

        def refusing() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return False
            except OSError:
                return True

        wait_until(refusing, "the server to stop accepting connections")
        assert proc.poll() is None  # still running: it owes 3 answers
        hold.unlink()
        thread.join(30)
        assert [r.status_code for r in result] == [200, 200, 200]
        for body, response in zip(bodies, result, strict=True):
            assert_answers_equal(response.json(), body["inputs"], reference)
        stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
        assert "served and drained" in stdout
    finally:
        hold.unlink(missing_ok=True)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_command_help_and_errors(tmp_path):
    from click.testing import CliRunner

    from imdb_deploy.cli import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    example = "Example:\n    imdb-deploy serve runs/minilm-2k-onnx --port 8000\n"  # in its \\b block
    assert example in result.output and "--max-batch-tokens" in result.output
    missing = runner.invoke(cli, ["serve", str(tmp_path / "nope")])
    assert missing.exit_code == 1
    assert "no such folder" in missing.output
    limits = runner.invoke(cli, ["serve", str(tmp_path), "--max-client-batch-size", "600"])
    assert limits.exit_code == 1
    assert "max_client_batch_size=600 is more than max_concurrent_requests=512" in limits.output
    short_key = runner.invoke(cli, ["serve", str(tmp_path), "--api-key", "abc"])
    assert short_key.exit_code == 1 and "api_key: shorter than 8 characters" in short_key.output
    assert "--payload-limit" in result.output and "--api-key" in result.output


def test_serve_config_quotes_the_bad_value():
    from imdb_deploy.errors import ConfigError
    from imdb_deploy.serve.config import ServeConfig

    for kwargs, message in (
        ({"port": 70000}, "port=70000"),
        ({"max_batch_tokens": 0}, "max_batch_tokens=0"),
        ({"max_batch_size": 0}, "max_batch_size=0"),
        ({"max_wait_ms": -1}, "max_wait_ms=-1"),
        ({"host": ""}, "host=''"),
    ):
        with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
            ServeConfig(**kwargs)


def test_batch_token_budget_below_max_length_is_refused(onnx_dir):
    from imdb_deploy.errors import ConfigError

    with pytest.raises(ConfigError, match="max_batch_tokens=32: below the model's max_length"):
        make_app(onnx_dir, max_batch_tokens=32)
