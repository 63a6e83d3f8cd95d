"""JSON within limits, for every place that parses JSON a user sent: input lines, training files, request bodies.

Nesting deeper than MAX_JSON_DEPTH is refused before it is parsed (a hostile line cannot exhaust the stack), numbers
can be kept as the literal text they were written in (JsonNumber: ids stay exact), and a failure comes back as a
reason and a fix, never an exception a caller forgot.
"""

from __future__ import annotations

import json
import math
import re

from imdb_deploy.errors import InputError

MAX_JSON_DEPTH = 32  # JSON nested deeper is refused before it is parsed

_JSON_TYPES = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    list: "an array",
    dict: "an object",
}


def json_kind(value) -> str:
    """How a JSON value's type reads in a message: "a number", "an array", "null", ..."""
    if isinstance(value, JsonNumber):
        return "a number"
    return _JSON_TYPES.get(type(value), type(value).__name__)


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')

_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """How deeply the arrays and objects of JSON `text` nest, counted without parsing it.

    Stops counting past MAX_JSON_DEPTH. Cheap for ordinary lines: a line with fewer opening brackets than
    the limit cannot nest deeper.
    """
    opening = text.count("[") + text.count("{")
    if opening <= MAX_JSON_DEPTH:
        return opening
    depth = deepest = 0
    for match in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                break
        else:
            depth -= 1
    return deepest


class JsonNumber(str):
    """A JSON number kept as the literal text it was written in (`1.0000000000000000001` stays that, not 1.0;
    an integer of any length stays whole). Writers put it back as a bare number (writers.id_json)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str.__str__(self)

    def is_finite(self) -> bool:
        """False for a literal no float can hold (`1e999`), which readers of the output would turn to infinity."""
        return math.isfinite(float(self)) or not any(c in self for c in ".eE")


def parse_json(text: str, exact_numbers: bool = False) -> tuple[object, str | None, str | None]:
    """JSON `text` parsed within the limits: (value, None, None), or (None, reason, fix).

    Args:
        text: one JSON document.
        exact_numbers: numbers come back as JsonNumber (their literal text), so none is rounded and no
            integer is too long; else as int and float, and an integer over Python's 4,300-digit limit is
            a bad value (reason and fix), not a ValueError.
    """
    if json_depth(text) > MAX_JSON_DEPTH:
        return None, f"JSON nested deeper than {MAX_JSON_DEPTH} levels", "flatten the record"
    try:
        if exact_numbers:
            return json.loads(text, parse_int=JsonNumber, parse_float=JsonNumber), None, None
        return json.loads(text), None, None
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})", "fix or remove the line"
    except RecursionError:
        return None, f"JSON nested deeper than {MAX_JSON_DEPTH} levels", "flatten the record"
    except ValueError as exc:  # "Exceeds the limit (4300 digits) for integer string conversion"
        return None, f"a number too long to read ({str(exc).split(';')[0]})", "quote it, or shorten it"


def loads_checked(text: str):
    """Parse JSON `text` within the depth limit (for a server's request bodies).

    Raises:
        InputError: too deep or not valid JSON.
    """
    value, reason, fix = parse_json(text)
    if reason:
        raise InputError(f"{reason}; {fix}")
    return value
