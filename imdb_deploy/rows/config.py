"""Settings of reading and writing rows, light enough for the CLI: formats, error policies, limits on one row, the CSV
delimiter.
"""

from __future__ import annotations

from imdb_deploy.errors import ConfigError

# Limits on one row (beside reviews.MAX_REVIEW_BYTES on a review). A line (JSON escapes can triple a text) or CSV
# field over MAX_LINE_BYTES is set aside unread, in pieces: memory stays flat however long the line. JSON nested
# deeper than jsonlimits.MAX_JSON_DEPTH is refused before it is parsed.
MAX_LINE_BYTES = 4 << 20

# Most review characters read into one chunk, whatever the chunk's row count: 1,024 rows of the 1 MiB cap
# would otherwise hold 1 GiB of text at once.
MAX_CHUNK_CHARS = 16 << 20

ON_ERROR = ("fail", "skip")

INPUT_FORMATS = ("auto", "jsonl", "csv", "text", "parquet")

CSV_DELIMITERS = ",;\t|"  # what --delimiter auto looks for in the header line


def parse_delimiter(text: str) -> str | None:
    """`--delimiter` as the reader takes it: "auto" is None (sniffed), "tab" (or "\\t") a tab, else one character.

    Raises:
        ConfigError: anything else, quoted.
    """
    if text == "auto":
        return None
    if text in ("tab", "\\t"):
        return "\t"
    if len(text) == 1 and text not in '"\r\n':
        return text
    raise ConfigError(f"delimiter={text!r}: use auto, tab or one character such as , ; |")


OUTPUT_FORMATS = ("jsonl", "csv")

# --on-duplicate-id: warn counts repeated and null ids in the summary; fail refuses the output (exit 1).
ON_DUPLICATE_ID = ("warn", "fail")
