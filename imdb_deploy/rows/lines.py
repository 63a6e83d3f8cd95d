"""Lines of a byte stream as the readers see them: a line over MAX_LINE_BYTES (skipped unread, its size and head
kept), the quoting state of a CSV record scanned without holding it, and a line's text decoded as UTF-8."""

from __future__ import annotations

import re
from functools import lru_cache


class TooLong:
    """Stands for a line over MAX_LINE_BYTES, which is skipped unread: its size and first bytes, and for CSV the
    quoting state at its end when it starts a record and when it starts inside a quoted field (csv_scan)."""

    def __init__(self, size: int, head: bytes, ends: tuple[int, int] = (0, 0)) -> None:
        self.size, self.head, self.ends = size, head, ends

    def strip(self) -> bytes:
        return self.head.strip() or b"x"


def too_long_reason(raw: TooLong, limit: int) -> tuple[str, str]:
    return (
        f"the line is {raw.size:,} bytes, over the limit of {limit:,} bytes per line",
        "shorten the review (only the first and last 512 tokens are read anyway)",
    )


class LineTooLong(Exception):
    pass


# The states of a CSV record as csv's strict reader parses it (quotes doubled inside a quoted field, no escape
# character): at a field's start, in an unquoted field, in a quoted one, just after a quote inside a quoted one;
# then the record's end (a line ending outside quotes) or text after a closing quote (broken quoting).
FIELD, UNQUOTED, QUOTED, QUOTE, END, BROKEN = range(6)


@lru_cache(maxsize=8)
def _field_stop(delimiter: bytes) -> re.Pattern:
    return re.compile(re.escape(delimiter) + rb"|[\r\n]")


def csv_scan(state: int, data: bytes, delimiter: bytes) -> int:
    """The CSV state after reading `data` (UTF-8 bytes, any piece of a record) from `state`; END and BROKEN
    stay. Only quotes, delimiters and line endings are looked at, so a record of any size is scanned unheld."""
    i, n = 0, len(data)
    while i < n and state < END:
        if state == QUOTED:
            j = data.find(b'"', i)
            if j < 0:
                return state
            state, i = QUOTE, j + 1
        elif state == UNQUOTED:
            stop = _field_stop(delimiter).search(data, i)
            if stop is None:
                return state
            state, i = (FIELD if stop.group() == delimiter else END), stop.end()
        elif data.startswith(b'"', i):  # a field's opening quote, or a doubled quote inside one
            state, i = QUOTED, i + 1
        elif data.startswith(delimiter, i):
            state, i = FIELD, i + len(delimiter)
        elif data[i] in b"\r\n":
            state = END
        else:
            state, i = (UNQUOTED if state == FIELD else BROKEN), i + 1
    return state


def skip_newlines(stream) -> int:
    """Consume the empty lines (b"\\n" bytes) at the head of a peekable stream, in blocks; how many."""
    count = 0
    while True:
        block = stream.peek(1 << 16)
        run = len(block) - len(block.lstrip(b"\n"))
        if not run:
            return count
        stream.read(run)
        count += run


def decode_line(raw: bytes, line: int) -> tuple[str, str | None]:
    """A line's text (line ending kept) and, if its bytes are not UTF-8, the reason."""
    if isinstance(raw, TooLong):
        raw = raw.head
    if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return raw.decode("utf-8", "replace"), f"invalid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1})"
