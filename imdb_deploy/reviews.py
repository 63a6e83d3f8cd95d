"""The one review check (every reader, both engines and the server apply it) and the row a reader yields."""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

from imdb_deploy.errors import InputError
from imdb_deploy.jsonlimits import JsonNumber, json_kind

# Limits on one review: IMDb's longest is about 14 KB and a review is cut to 512 tokens anyway, so 1 MiB of text is
# far past any real review while a hostile one cannot take the memory with it.
MAX_REVIEW_BYTES = 1 << 20

DEFAULT_ID_FIELD = "id"  # carried to the output when rows have it, so results join back to their source

SKIP_HINT = "or pass --on-error skip --errors FILE to score the other rows and set bad ones aside"

# A review the tokenizer would see as empty: the BERT normaliser drops control and format characters
# (Unicode Cc and Cf: zero-width spaces and joiners, U+FEFF, soft hyphens, bidi marks) and U+FFFD, and
# splits on whitespace. A visible ASCII character anywhere ends the check at once.
_VISIBLE_ASCII = re.compile(r"[!-~]")

_DROPPED = frozenset(("Cc", "Cf", "Zs", "Zl", "Zp"))  # not Cs: a lone surrogate is refused, not blank

_SURROGATE = re.compile("[\ud800-\udfff]")


def is_blank(text: str) -> bool:
    """True when `text` holds no character the tokenizer keeps (only whitespace, control or zero-width ones)."""
    if _VISIBLE_ASCII.search(text):
        return False
    return all(ch.isspace() or ch == "\ufffd" or unicodedata.category(ch) in _DROPPED for ch in text)


def review_problem(text) -> tuple[str, str] | None:
    """Why `text` cannot be scored as a review, as (reason, fix), or None when it can.

    The one review check, applied by every reader (local and Ray) and for a server to call on a request
    body's texts: a string, valid Unicode (no lone surrogate such as JSON's "\\ud800"), not empty once
    the tokenizer's normaliser has dropped whitespace, control and zero-width characters, and at most
    MAX_REVIEW_BYTES of UTF-8.
    """
    if not isinstance(text, str) or isinstance(text, JsonNumber):
        kind = json_kind(text)
        return f"the review is {kind}, not a string", "give the review as text"
    surrogate = _SURROGATE.search(text)
    if surrogate:
        return (
            f"the review holds a lone surrogate (\\u{ord(surrogate.group()):04x} at character "
            f"{surrogate.start() + 1:,}), which is not valid Unicode",
            "write the character as a valid pair (or UTF-8), or remove it",
        )
    if not text.strip():
        return "the review is empty", "remove the row or give it a review"
    if is_blank(text):
        return (
            "the review is empty once its control and zero-width characters are dropped",
            "remove the row or give it a review",
        )
    if len(text) * 4 > MAX_REVIEW_BYTES:  # only long texts pay for the encoding
        size = len(text.encode("utf-8"))
        if size > MAX_REVIEW_BYTES:
            return (
                f"the review is {size:,} bytes, over the limit of {MAX_REVIEW_BYTES:,} bytes",
                "shorten it (only the first and last 512 tokens are read anyway)",
            )
    return None


def validate_review(text) -> str:
    """`text` when it can be scored as a review (see review_problem).

    Raises:
        InputError: naming the problem and the fix.
    """
    problem = review_problem(text)
    if problem:
        raise InputError(f"{problem[0]}; {problem[1]}")
    return text


def _has_surrogate(value) -> bool:
    """True when a JSON id (a string, or an object's keys and values, an array's items) holds a lone surrogate."""
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_surrogate(key) or _has_surrogate(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(item) for item in value)
    return False


def _finite(value) -> bool:
    """False when `value` holds NaN or infinity (also nested, or a literal such as 1e999), which JSON output
    cannot hold."""
    if isinstance(value, JsonNumber):
        return value.is_finite()
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite(item) for item in value)
    return True


@dataclass(frozen=True)
class InputRow:
    """One input row: its line number, id and text, or the reason it cannot be scored."""

    line: int
    id: object
    text: str | None = None
    reason: str | None = None
    fix: str | None = None


def count_noun(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
