"""The HTTP contract of `imdb-deploy serve`: text-embeddings-inference's `/predict` for a single-text classifier.

What a request may hold and what its answer looks like, the error body every refusal carries, the access rules
checked before a route runs (Host, API key, Content-Type) and the request metrics. No model and no batcher here:
`imdb_deploy.serve` wires this to them.

Request shapes (TEI's `PredictInput`, router/src/http/types.rs, for a model that scores one text at a time):
  `"a review"` and `["a review"]`   one input; the answer is TEI's flat list of `{label, score}`
  `[["a"], ["b"], ...]`             TEI's batch; the answer is one list per input
  `["a", "b"]`                      TEI's sentence pair: refused (422), this model scores single reviews
  `["a", "b", "c", ...]`            our extension (TEI refuses 3+ strings): a batch, as `[["a"], ["b"], ...]`
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from imdb_deploy.jsonlimits import MAX_JSON_DEPTH, json_depth, json_kind
from imdb_deploy.metrics import softmax
from imdb_deploy.reviews import is_blank
from imdb_deploy.serve.config import ServeConfig

# Paths that get their own label in the request metrics; anything else is counted as "other" so that a
# scan of random URLs cannot grow the metrics without bound.
PREDICT_ROUTES = ("/predict", "/", "/invocations")

ROUTES = (*PREDICT_ROUTES, "/health", "/info", "/metrics", "/openapi.json", "/docs", "/docs/assets")

# Status of a request whose client went away before its answer (nginx's "client closed request").
CLIENT_CLOSED = 499

# Most characters of client input quoted back in an error message.
EXCERPT_CHARS = 40

FIELDS = ("inputs", "truncate", "truncation_direction", "raw_scores", "parameters", "details")

FUNCTIONS = ("softmax", "sigmoid", "none")


class RequestError(Exception):
    """A request the server refuses: HTTP status, TEI error type, message naming the field or the limit.

    error_type is TEI's (`Validation` 413/422, `Empty` 400, `Overloaded` 429, `Backend` 424, `Unhealthy` 503)
    where TEI has one for the status, else the status's name in the same spelling (`NotFound`, `Unauthorized`).
    """

    def __init__(self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": self.message, "error_type": self.error_type}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


# error_type of the statuses Starlette itself raises (unknown path, wrong method, ...).
STATUS_TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    408: "Timeout",
    413: "Validation",
    415: "UnsupportedMediaType",
    422: "Validation",
    429: "Overloaded",
    431: "Validation",
    500: "Internal",
    503: "Unhealthy",
}


def excerpt(value) -> str:
    """At most EXCERPT_CHARS characters of client input, ASCII-escaped and quoted, for an error message (a
    value that is not a string: its JSON kind)."""
    if not isinstance(value, str):
        return json_kind(value)
    cut = value[:EXCERPT_CHARS]
    return ascii(cut)[:-1] + ("..." if len(value) > EXCERPT_CHARS else "") + ascii(cut)[-1]


def _kind(value) -> str:
    return "a string" if isinstance(value, str) else json_kind(value)


def _validation(message: str) -> RequestError:
    return RequestError(422, "Validation", message)


@dataclass(frozen=True)
class PredictCall:
    """A checked /predict request.

    Attributes:
        texts: the reviews, in order.
        single: one input (`"a"` or `["a"]`): TEI answers it with a flat list.
        inference_api: the body had a `parameters` object (huggingface_hub's InferenceClient always sends
            one): a single input is then answered as `[[...]]`, the Inference API's shape that client reads.
        truncate: None (the server's --auto-truncate), True or False.
        direction: "left", "right", or None (cut as in training, the folder's truncation).
        raw_scores: logits instead of probabilities.
        top_k: keep only the k best classes (parameters.top_k).
        function: "softmax", "sigmoid" or "none" (parameters.function_to_apply), or None.
        details: our richer answer: one object per input with label, score, probabilities and variant.
    """

    texts: list[str]
    single: bool
    inference_api: bool = False
    truncate: bool | None = None
    direction: str | None = None
    raw_scores: bool = False
    top_k: int | None = None
    function: str | None = None
    details: bool = False


def _load(body: bytes):
    try:
        text = body.decode("utf-8")
        if json_depth(text) > MAX_JSON_DEPTH:
            raise _validation(f"body: JSON nested too deeply (more than {MAX_JSON_DEPTH} levels)")
        return json.loads(text)
    except UnicodeDecodeError as exc:
        raise _validation(f"body: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise _validation(
            f'body: malformed JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); send {{"inputs": "a review"}}'
        ) from exc
    except RecursionError as exc:
        raise _validation("body: JSON nested too deeply") from exc
    except ValueError as exc:  # Python's int-digit limit: an integer of 4,301+ digits
        raise _validation(f"body: a number Python will not read ({str(exc)[:80]})") from exc


def _texts(inputs) -> tuple[list, bool, list[str]]:
    """(texts, single, where) from TEI's input shapes, or a 422 naming the shape."""
    if isinstance(inputs, str):
        return [inputs], True, ["inputs"]
    if not isinstance(inputs, list):
        raise _validation(
            f"inputs: expected a string, a list of strings or a batch [[string], ...], got {json_kind(inputs)}"
        )
    if not inputs:
        raise _validation("inputs: empty array; send at least one review")
    if isinstance(inputs[0], list):  # TEI's batch: every item a list of one string
        texts = []
        for i, item in enumerate(inputs):
            if not isinstance(item, list):
                raise _validation(f"inputs[{i}]: expected [string] in a batch, got {_kind(item)}")
            if len(item) == 2:
                raise _validation(
                    f"inputs[{i}]: a pair of texts, which this single-text classifier cannot score; send [review]"
                )
            if len(item) != 1:
                raise _validation(f"inputs[{i}]: expected [string] (one review), got {len(item)} items")
            texts.append(item[0])
        return texts, False, [f"inputs[{i}][0]" for i in range(len(texts))]
    if len(inputs) == 2 and all(isinstance(t, str) for t in inputs):
        raise _validation(
            "inputs: [string, string] is a pair of texts in text-embeddings-inference, which this single-text "
            'classifier cannot score; send two reviews as [["a"], ["b"]]'
        )
    return inputs, len(inputs) == 1, [f"inputs[{i}]" for i in range(len(inputs))]


def _options(payload: dict) -> dict:
    """The optional fields, each checked; unknown fields are ignored, as TEI does."""
    out = {}
    for name in ("truncate", "raw_scores", "details"):
        value = payload.get(name)
        if value is not None and not isinstance(value, bool):
            raise _validation(f"{name}: expected true or false, got {_kind(value)}")
        out[name] = value
    direction = payload.get("truncation_direction")
    if direction is not None:
        if not isinstance(direction, str) or direction.lower() not in ("left", "right"):
            raise _validation(f'truncation_direction: {excerpt(direction)}; use "left" or "right"')
        direction = direction.lower()
    out["direction"] = direction
    parameters = payload.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise _validation(f"parameters: expected an object, got {_kind(parameters)}")
    parameters = parameters or {}
    top_k = parameters.get("top_k")
    if isinstance(top_k, float) and top_k.is_integer():  # 3.0 is an integer to JSON Schema
        top_k = int(top_k)
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise _validation(f"parameters.top_k: expected a whole number of 1 or more, got {excerpt(str(top_k))}")
    function = parameters.get("function_to_apply")
    if function is not None and (not isinstance(function, str) or function.lower() not in FUNCTIONS):
        raise _validation(f"parameters.function_to_apply: {excerpt(function)}; use one of {', '.join(FUNCTIONS)}")
    out["top_k"] = top_k
    out["function"] = function.lower() if function else None
    out["inference_api"] = isinstance(payload.get("parameters"), dict)
    return out


def parse_predict_body(body: bytes, config: ServeConfig) -> PredictCall:
    """A /predict body, checked: the shape and types of every field first, then the size limits.

    Args:
        body: the raw request body.
        config: the limits (max_client_batch_size, max_review_bytes).

    Returns:
        The checked request.

    Raises:
        RequestError: 422 for malformed JSON, a missing `inputs`, a wrong type, a pair of texts, too many
            texts (TEI's batch-size error); 400 (TEI's `Empty`) for an empty or blank text; 413 for a text over
            max_review_bytes.
    """
    payload = _load(body)
    if not isinstance(payload, dict):
        raise _validation(f'body: expected a JSON object like {{"inputs": ...}}, got {_kind(payload)}')
    if "inputs" not in payload:
        raise _validation("inputs: field missing; send a review or a list of reviews")
    options = _options(payload)
    texts, single, where = _texts(payload["inputs"])
    sizes = []
    for text, place in zip(texts, where, strict=True):
        if not isinstance(text, str):
            raise _validation(f"{place}: expected a string, got {json_kind(text)}")
        try:
            sizes.append(len(text.encode("utf-8")))
        except UnicodeEncodeError as exc:
            raise _validation(f"{place}: not valid Unicode (a lone surrogate at character {exc.start})") from exc
    for text, place in zip(texts, where, strict=True):
        if is_blank(text):  # the readers' rule: nothing the tokenizer keeps (whitespace, control, zero-width)
            raise RequestError(
                400,
                "Empty",
                f"{place}: empty text (nothing but whitespace, control or zero-width characters); give a review",
            )
    if len(texts) > config.max_client_batch_size:
        raise _validation(
            f"inputs: batch size {len(texts)} > maximum allowed batch size {config.max_client_batch_size}; "
            "split it into several requests"
        )
    for size, place in zip(sizes, where, strict=True):
        if size > config.max_review_bytes:
            raise RequestError(
                413, "Validation", f"{place}: {size:,} bytes, more than max_review_bytes={config.max_review_bytes:,}"
            )
    return PredictCall(
        texts=texts,
        single=single,
        inference_api=options["inference_api"],
        truncate=options["truncate"],
        direction=options["direction"],
        raw_scores=bool(options["raw_scores"]),
        top_k=options["top_k"],
        function=options["function"],
        details=bool(options["details"]),
    )


def probabilities_of(logits: np.ndarray) -> np.ndarray:
    """Class probabilities exactly as `Predictor.predict_proba` computes them from the same logits."""
    return softmax(logits).astype(np.float32)


def answer(call: PredictCall, logits: np.ndarray, label_names, variant: str) -> list | dict:
    """The JSON answer to `call` from its reviews' logits.

    TEI's: per input, every class as `{label, score}`, best first (softmax, or the logits with raw_scores);
    `parameters.function_to_apply` and `parameters.top_k` as huggingface_hub's InferenceClient means them.
    With `details`: per input our object `{label, score, probabilities, variant}`.
    """
    probabilities = probabilities_of(logits)
    if call.details:
        rows = []
        for row in probabilities:
            best = int(row.argmax())
            rows.append(
                {
                    "label": label_names[best],
                    "score": float(row[best]),
                    "probabilities": {name: float(p) for name, p in zip(label_names, row, strict=True)},
                    "variant": variant,
                }
            )
        return rows[0] if call.single and not call.inference_api else rows
    function = call.function or ("none" if call.raw_scores else "softmax")
    if function == "none":
        scores = logits.astype(np.float32)
    elif function == "sigmoid":
        scores = (1 / (1 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
    else:
        scores = probabilities
    answers = []
    for row in scores:
        ranked = sorted(zip(label_names, row, strict=True), key=lambda pair: -pair[1])[: call.top_k]
        answers.append([{"label": name, "score": float(score)} for name, score in ranked])
    return answers[0] if call.single and not call.inference_api else answers


def timing_headers(
    start: float, tokenization_s: float, queue_s: float, inference_s: float, call, tokens: int, compute_type: str
) -> dict[str, str]:
    """TEI's response headers: whole milliseconds, characters and tokens of the request."""
    total = str(int((time.perf_counter() - start) * 1000))
    return {
        "x-compute-type": compute_type,
        "x-compute-time": total,
        "x-compute-characters": str(sum(len(t) for t in call.texts)),
        "x-compute-tokens": str(tokens),
        "x-total-time": total,
        "x-tokenization-time": str(int(tokenization_s * 1000)),
        "x-queue-time": str(int(queue_s * 1000)),
        "x-inference-time": str(int(inference_s * 1000)),
    }


def json_schema_limits(config: ServeConfig, max_length: int) -> dict:
    """The /predict request schema, with the running limits (what the server really accepts)."""
    # No maxLength: the limits are in UTF-8 bytes (a text, the whole body), which a JSON schema cannot state.
    single = {
        "type": "string",
        "minLength": 1,
        "pattern": r"\S",
        "description": f"A review (not blank), at most {config.max_review_bytes:,} bytes of UTF-8; the whole body at "
        f"most {config.max_body_bytes:,} bytes.",
    }
    batch_max = config.max_client_batch_size
    one_or_many = {
        "oneOf": [
            {**single, "title": "one review"},
            {"type": "array", "items": single, "minItems": 1, "maxItems": 1, "title": "one review, as a list"},
            {
                "type": "array",
                "items": {"type": "array", "items": single, "minItems": 1, "maxItems": 1},
                "minItems": 1,
                "maxItems": batch_max,
                "title": "a batch, as text-embeddings-inference spells it",
            },
        ]
    }
    if batch_max >= 3:
        one_or_many["oneOf"].append(
            {
                "type": "array",
                "items": single,
                "minItems": 3,
                "maxItems": batch_max,
                "title": "a batch as a flat list of 3 or more reviews (our extension; two strings are a pair)",
            }
        )
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "inputs": one_or_many,
            "truncate": {
                "type": ["boolean", "null"],
                "description": f"Cut reviews past the model's {max_length} tokens (true) or refuse them (false, "
                "422); null or absent: the server's --auto-truncate.",
            },
            "truncation_direction": {
                "type": ["string", "null"],
                "enum": ["left", "right", "Left", "Right", None],
                "description": "right keeps the head, left the tail; absent: the cut the model was trained with.",
            },
            "raw_scores": {"type": ["boolean", "null"], "description": "Logits instead of probabilities."},
            "details": {
                "type": ["boolean", "null"],
                "description": "Answer one object per input: label, score, probabilities by label, variant.",
            },
            "parameters": {
                "type": ["object", "null"],
                "description": "huggingface_hub's InferenceClient parameters; its presence makes a single input's "
                "answer [[...]], the shape that client reads.",
                "properties": {
                    "top_k": {"type": ["integer", "null"], "minimum": 1},
                    "function_to_apply": {"type": ["string", "null"], "enum": [*FUNCTIONS, None]},
                },
            },
        },
        "examples": [{"inputs": "A wonderful film."}, {"inputs": [["Loved it."], ["Dull."]]}],
    }


class ErrorBody(BaseModel):
    """The body of every refusal, as TEI words it (its ErrorResponse)."""

    error: str = Field(description="What was wrong: the field and index, or the limit.")
    error_type: str = Field(description="TEI's error type (Validation, Empty, Overloaded, Backend, ...).")
