"""`imdb-deploy serve` as a drop-in for text-embeddings-inference's clients, with clients nobody here wrote.

huggingface_hub's InferenceClient, TEI's documented request shapes, raw sockets (disconnects, half-close, stalled
bodies) and schemathesis, each against a real uvicorn server on 127.0.0.1.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import time
from contextlib import suppress

import httpx
import numpy as np
import pytest
from conftest import toy_reviews
from test_serve import make_app, metric_values, running

pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def onnx_dir(tiny_onnx_dir):
    return tiny_onnx_dir


@pytest.fixture(scope="module")
def reference(onnx_dir):
    from imdb_deploy.runtimes.predictor import Predictor

    return Predictor(onnx_dir, variant="int8")  # what `server` serves


@pytest.fixture(scope="module")
def server(onnx_dir):
    """One server for the read-only contract tests (module scope: the tiny model loads once)."""
    app, _ = make_app(onnx_dir, variant="int8")
    with running(app) as url:
        yield url


def sorted_classes(probabilities: np.ndarray, labels) -> list[dict]:
    ranked = sorted(zip(labels, probabilities, strict=True), key=lambda pair: -pair[1])
    return [{"label": name, "score": float(p)} for name, p in ranked]


def test_inference_client_gets_every_class_as_predictor_predict(server, onnx_dir, monkeypatch):
    """huggingface_hub posts {"inputs", "parameters"} and reads [[...]][0]: every class, the same numbers."""
    from huggingface_hub import InferenceClient, constants

    # The autouse fixture's offline mode blocks every huggingface_hub request; this one goes to 127.0.0.1 only.
    monkeypatch.setattr(constants, "is_offline_mode", lambda: False)

    from imdb_deploy.runtimes.predictor import Predictor

    texts, _ = toy_reviews(12, seed=21, min_words=2, max_words=80)
    want = Predictor(onnx_dir, variant="int8").predict_proba(texts)
    labels = ("negative", "positive")
    for client in (InferenceClient(base_url=server), InferenceClient(model=f"{server}/predict")):
        for text, row in zip(texts, want, strict=True):
            got = client.text_classification(text)
            assert [(e.label, e.score) for e in got] == [(c["label"], c["score"]) for c in sorted_classes(row, labels)]
        top = client.text_classification(texts[0], top_k=1)
        assert [e.label for e in top] == [sorted_classes(want[0], labels)[0]["label"]]
        raw = client.text_classification(texts[0], function_to_apply="none")
        logits = Predictor(onnx_dir, variant="int8").logits([texts[0]])[0]
        assert sorted(e.score for e in raw) == sorted(float(x) for x in logits)


def test_tei_request_shapes_and_answers(server, reference):
    texts = ["A wonderful film, loved it.", "Dull and far too long.", "Fine."]
    want = [sorted_classes(row, reference.label_names) for row in reference.predict_proba(texts)]
    with httpx.Client(base_url=server, timeout=10) as client:
        for path in ("/predict", "/", "/invocations"):
            single = client.post(path, json={"inputs": texts[0]})
            assert single.status_code == 200
            assert _close(single.json(), want[0]), path
        assert _close(client.post("/predict", json={"inputs": [texts[0]]}).json(), want[0])  # ["a"]: one input
        batch = client.post("/predict", json={"inputs": [[t] for t in texts]}).json()
        assert all(_close(got, expected) for got, expected in zip(batch, want, strict=True))
        flat = client.post("/predict", json={"inputs": texts}).json()  # our extension: 3+ strings
        assert all(_close(got, expected) for got, expected in zip(flat, want, strict=True))
        pair = client.post("/predict", json={"inputs": texts[:2]})
        assert pair.status_code == 422 and "pair of texts" in pair.json()["error"]
        raw = client.post("/predict", json={"inputs": texts[0], "raw_scores": True}).json()
        assert sorted(c["score"] for c in raw) == sorted(float(x) for x in reference.logits([texts[0]])[0])
        ignored = client.post("/predict", json={"inputs": texts[0], "normalize": True, "prompt_name": None})
        assert ignored.status_code == 200  # unknown fields are ignored, as TEI does
        detailed = client.post("/predict", json={"inputs": texts[0], "details": True}).json()
        assert set(detailed) == {"label", "score", "probabilities", "variant"} and detailed["variant"] == "int8"
        headers = client.post("/predict", json={"inputs": texts[0]}).headers
        for name in ("x-compute-time", "x-queue-time", "x-tokenization-time", "x-inference-time", "x-total-time"):
            assert headers[name].isdigit(), name  # whole milliseconds, as TEI writes them
        assert int(headers["x-compute-characters"]) == len(texts[0])


def _close(got: list[dict], want: list[dict]) -> bool:
    return [c["label"] for c in got] == [c["label"] for c in want] and all(
        abs(g["score"] - w["score"]) <= 1e-6 for g, w in zip(got, want, strict=True)
    )


def test_truncate_false_refuses_a_review_past_max_length_and_direction_picks_the_kept_end(server, reference):
    long_review = " ".join(["great"] * 30 + ["awful"] * 60)  # past the tiny model's 64 tokens
    with httpx.Client(base_url=server, timeout=10) as client:
        refused = client.post("/predict", json={"inputs": long_review, "truncate": False})
        assert refused.status_code == 422 and "less than 64 tokens" in refused.json()["error"]
        short = client.post("/predict", json={"inputs": "great", "truncate": False})
        assert short.status_code == 200
        trained = client.post("/predict", json={"inputs": long_review}).json()
        assert _close(trained, sorted_classes(reference.predict_proba([long_review])[0], reference.label_names))
        ids = reference.tokenizer(long_review, add_special_tokens=False)["input_ids"]
        prefix, suffix = [reference.tokenizer.cls_token_id], [reference.tokenizer.sep_token_id]
        for direction, kept in (("right", ids[:62]), ("left", ids[-62:])):
            got = client.post("/predict", json={"inputs": long_review, "truncation_direction": direction}).json()
            logits = reference.logits_from_ids([prefix + kept + suffix])
            probabilities = reference.to_predictions(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))[0]
            assert got[0]["label"] == probabilities.label


def test_every_error_has_tei_shape_and_status(server):
    with httpx.Client(base_url=server, timeout=10) as client:
        for response, status in (
            (client.get("/nowhere"), 404),
            (client.get("/predict"), 405),
            (client.post("/predict", content=b'{"inputs": "x", "n": ' + b"7" * 4301 + b"}", headers=_json()), 422),
            (client.post("/predict", content=b'{"inputs": "x"}', headers={"content-type": "text/plain"}), 415),
            (client.post("/predict", json={"inputs": ""}), 400),
        ):
            assert response.status_code == status, response.text
            assert set(response.json()) == {"error", "error_type"}, response.text
    # uvicorn's own 400 for a request line it cannot parse: TEI-shaped too.
    reply = _raw(server, b"NOT HTTP\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400") and b'"error_type": "BadRequest"' in reply


def _json() -> dict:
    return {"content-type": "application/json"}


def _raw(url: str, data: bytes, half_close: bool = False, timeout: float = 10) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_client_that_half_closes_after_its_post_gets_its_answer(server):
    body = b'{"inputs": "A wonderful film."}'
    request = (
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    reply = _raw(server, request, half_close=True)
    assert reply.startswith(b"HTTP/1.1 200") and b'"label"' in reply


def test_a_client_that_disconnects_mid_body_counts_as_499_not_500(onnx_dir, caplog):
    app, _ = make_app(onnx_dir)
    with running(app) as url:
        host, port = url.removeprefix("http://").split(":")
        for _ in range(3):
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(
                    b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    b'Content-Length: 1000\r\n\r\n{"inputs": "'
                )
                time.sleep(0.1)
        key = ("imdb_deploy_http_requests_total", (("route", "/predict"), ("status", "499")))
        deadline = time.monotonic() + 10
        while metric_values(url).get(key) != 3:
            assert time.monotonic() < deadline, metric_values(url)
            time.sleep(0.05)
        values = metric_values(url)
        assert not any(labels and ("status", "500") in labels for (_, labels) in values)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_access_control_api_key_host_cors_and_info_details(onnx_dir):
    app, _ = make_app(onnx_dir, api_key="s3cret-key-123", allowed_hosts=("api.example",), info_details=True)
    with running(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        body = {"inputs": "good"}
        assert client.post("/predict", json=body).status_code == 401
        wrong = client.post("/predict", json=body, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error_type"] == "Unauthorized"
        auth = {"authorization": "Bearer s3cret-key-123"}
        assert client.post("/predict", json=body, headers=auth).status_code == 200
        assert client.get("/health").status_code == 200  # open for probes
        assert client.get("/health", headers={"host": "10.1.2.3:8000"}).status_code == 200  # a pod's address
        assert client.get("/info").status_code == 401
        rebinding = client.get("/info", headers={**auth, "host": "evil.example"})
        assert rebinding.status_code == 403 and "evil.example" in rebinding.json()["error"]
        assert client.get("/info", headers={**auth, "host": "api.example:8000"}).status_code == 200
        info = client.get("/info", headers=auth).json()
        assert "versions" in info and info["model_dir"].startswith("/")  # the operator asked for them
        preflight = client.options(
            "/predict", headers={"origin": "https://site.example", "access-control-request-method": "POST"}
        )
        assert "access-control-allow-origin" not in preflight.headers  # no CORS unless --cors-origin
    app, _ = make_app(onnx_dir, cors_origins=("https://site.example",))
    with running(app) as url:
        answer = httpx.post(f"{url}/predict", json={"inputs": "good"}, headers={"origin": "https://site.example"})
        assert answer.headers["access-control-allow-origin"] == "https://site.example"


def test_long_review_flood_is_shed_while_health_and_a_short_review_answer_at_once(onnx_dir):
    """24 clients of 1 MB reviews, one short-review client and /health probes, for a bounded 6 s."""
    app, _ = make_app(onnx_dir)
    review = ("a long and winding review of a film " * 30_000)[:1_000_000]
    with running(app) as url:
        stop = time.monotonic() + 6
        statuses: list[int] = []

        def flood() -> None:
            with httpx.Client(base_url=url, timeout=30) as client:
                while time.monotonic() < stop:
                    statuses.append(client.post("/predict", json={"inputs": review}).status_code)

        threads = [threading.Thread(target=flood) for _ in range(24)]
        for thread in threads:
            thread.start()
        time.sleep(1)
        health, short = [], []
        with httpx.Client(base_url=url, timeout=30) as client:
            while time.monotonic() < stop - 1:
                start = time.perf_counter()
                assert client.get("/health").status_code == 200
                health.append(time.perf_counter() - start)
                start = time.perf_counter()
                assert client.post("/predict", json={"inputs": "A short review."}).status_code in (200, 429)
                short.append(time.perf_counter() - start)
        for thread in threads:
            thread.join(60)
    assert statuses and set(statuses) <= {200, 429} and 429 in statuses  # the flood was shed, not queued
    assert max(health) < 1.0, health
    assert max(short) < 2.0, short


def test_stalled_bodies_cost_bounded_memory_and_are_dropped_within_the_timeout(onnx_dir):
    import psutil

    app, _ = make_app(onnx_dir, body_timeout_s=1.0)
    with running(app) as url:
        host, port = url.removeprefix("http://").split(":")
        head = (
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 2000000\r\n\r\n{"inputs": "'
        )
        part = b"x" * 1_000_000
        rss_before = psutil.Process().memory_info().rss
        sockets = []
        for _ in range(200):
            sock = socket.create_connection((host, int(port)), timeout=10)
            with suppress(OSError):  # refused (429) and closed before all of it was sent
                sock.sendall(head + part)
            sockets.append(sock)
        rss_peak = psutil.Process().memory_info().rss
        start = time.monotonic()
        for sock in sockets:
            sock.settimeout(5)
            try:
                while sock.recv(65536):
                    pass
            except ConnectionResetError:
                pass
            sock.close()
        waited = time.monotonic() - start
        assert (rss_peak - rss_before) / 2**20 < 100
        assert waited < 1.0 + 3, waited
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200


def test_schemathesis_finds_no_failure(server, tmp_path):
    """Every schemathesis check, bounded examples, against the served schema (well under a minute)."""
    pytest.importorskip("schemathesis")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{server}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "30",
            "--seed",
            "1",
            "--request-timeout",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    failures = [line[:300] for line in result.stdout.splitlines() if line.strip()][-150:]
    assert result.returncode == 0, "\n".join(failures) + result.stderr[-2000:]


def test_a_stalled_request_head_and_an_idle_connection_are_closed(onnx_dir):
    app, _ = make_app(onnx_dir, body_timeout_s=1.0, keep_alive_s=1)
    with running(app) as url:
        host, port = url.removeprefix("http://").split(":")
        start = time.monotonic()
        with socket.create_connection((host, int(port)), timeout=10) as slow:
            slow.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-")  # and nothing more
            reply = slow.recv(65536)
            assert slow.recv(65536) == b""  # closed by the server
        assert reply.startswith(b"HTTP/1.1 408") and b'"Timeout"' in reply
        assert time.monotonic() - start < 1.0 + 2
        with socket.create_connection((host, int(port)), timeout=10) as big:
            big.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 40_000)  # still no end
            # Refused at once: httptools alone would buffer a head of any size until the deadline.
            assert big.recv(65536).startswith(b"HTTP/1.1 431")
        with socket.create_connection((host, int(port)), timeout=10) as idle:
            idle.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += idle.recv(65536)
            start = time.monotonic()
            while idle.recv(65536):  # the rest of the answer, then the keep-alive timeout closes it
                pass
            assert time.monotonic() - start < 1 + 2


def test_a_client_that_resets_while_its_request_waits_is_499_and_frees_its_place(onnx_dir):
    app, model = make_app(onnx_dir)
    with running(app) as url:
        host, port = url.removeprefix("http://").split(":")
        model.gate.clear()  # hold the model: the request waits in the queue
        body = b'{"inputs": [["good"], ["fine"], ["dull"]]}'
        try:
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(
                    b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                deadline = time.monotonic() + 10
                while metric_values(url)[("imdb_deploy_in_flight_reviews", ())] != 3:
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
                # An abortive close (RST): a FIN after a whole request is read as a half-close and answered.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            key = ("imdb_deploy_http_requests_total", (("route", "/predict"), ("status", "499")))
            deadline = time.monotonic() + 10
            while metric_values(url).get(key) != 1:
                assert time.monotonic() < deadline, metric_values(url)
                time.sleep(0.02)
            assert metric_values(url)[("imdb_deploy_in_flight_reviews", ())] == 0
        finally:
            model.gate.set()
        assert httpx.post(f"{url}/predict", json={"inputs": "good"}, timeout=10).status_code == 200
        values = metric_values(url)
        assert not any(("status", "500") in labels for _, labels in values)


def test_an_error_quotes_client_input_only_as_a_short_escaped_excerpt(server):
    huge = "\u202e<script>" + "x" * 1_000_000
    with httpx.Client(base_url=server, timeout=10) as client:
        for body in (
            {"inputs": "ok", "truncation_direction": huge},
            {"inputs": "ok", "parameters": {"function_to_apply": huge}},
        ):
            response = client.post("/predict", json=body)
            assert response.status_code == 422 and len(response.content) < 300, response.text[:300]
            assert "<script>" in response.json()["error"] and "\\u202e" in response.json()["error"]  # escaped
        ignored = client.post("/predict", json={"inputs": "ok", huge: 1})  # an unknown field: ignored, never echoed
        assert ignored.status_code == 200 and len(ignored.content) < 300
        host = client.get("/info", headers={"host": "h" * 5000})
        assert host.status_code == 403 and len(host.content) < 300


def test_health_is_503_when_a_client_batch_hangs_in_the_model(onnx_dir):
    """The probe runs beside the batches, so it alone would not see a hung model call; /health still does."""
    from test_serve import Gated

    app, model = make_app(onnx_dir, health_timeout_s=0.5)
    probe_ids = model.inner.encode(["A fine film."])
    model.logits_from_ids = lambda encoded: (
        model.inner.logits_from_ids(encoded) if encoded == probe_ids else Gated.logits_from_ids(model, encoded)
    )
    with running(app) as url:
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200
        model.gate.clear()
        held = threading.Thread(target=lambda: httpx.post(f"{url}/predict", json={"inputs": "good"}, timeout=30))
        held.start()
        try:
            deadline = time.monotonic() + 10
            while model.held != [1]:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert httpx.get(f"{url}/health", timeout=10).status_code == 200  # a batch may take a while
            time.sleep(0.6)
            stuck = httpx.get(f"{url}/health", timeout=10)
            assert stuck.status_code == 503 and "has been in the model" in stuck.json()["error"]
        finally:
            model.gate.set()
        held.join(30)
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200


def test_a_crash_in_a_route_is_a_tei_shaped_500(onnx_dir, monkeypatch):
    from imdb_deploy.serve import app as serve

    app, _ = make_app(onnx_dir)

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(serve, "answer", broken)
    with running(app) as url:
        response = httpx.post(f"{url}/predict", json={"inputs": "good"}, timeout=10)
        assert response.status_code == 500
        assert response.json() == {"error": "internal error (KeyError)", "error_type": "Internal"}
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200
