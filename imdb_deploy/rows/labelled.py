"""Labelled IMDb reviews from the Hub or from local files, validated row by row.

Sources (`--data`):
- "imdb" (default) or another Hub dataset id: loaded with `datasets.load_dataset` (needs the Hub).
- "imdb-sample": 2,000 train + 1,000 test real IMDb reviews shipped inside the package (no download;
  provenance in imdb_deploy/resources/README.md).
- a folder holding `train` / `test` files as Parquet, CSV or JSONL (`train.parquet`, `test-00000-of-00001.parquet`,
  also inside a `data/` subfolder), like data/imdb or a Hub snapshot;
- the original Stanford `aclImdb/` layout (`{train,test}/{pos,neg}/*.txt`), or the folder that holds it;
- a single file, which serves as whatever one split is asked for;
- explicit files per split: "train=path/a.csv,test=path/b.jsonl".
Labels may be 0/1 or neg/pos/negative/positive. Every problem names its file and row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from imdb_deploy.errors import DataError
from imdb_deploy.folders import hub_errors, is_local_reference
from imdb_deploy.jsonlimits import parse_json

HUB_ALIASES = {"imdb": "stanfordnlp/imdb"}

# Data sources shipped inside the package, by name.
PACKAGED_SOURCES = {"imdb-sample": Path(__file__).resolve().parent.parent / "resources"}

FILE_SUFFIXES = (".parquet", ".csv", ".jsonl", ".json")

TEXT_COLUMNS = ("text", "review")

LABEL_COLUMNS = ("label", "sentiment")

UNLABELLED = -1  # the label of a review without one (IMDb's `unsupervised` split writes -1 too)
UNLABELLED_SPLIT = "unsupervised"  # IMDb's name for its 50,000 unlabelled reviews
_LABEL_WORDS = {"0": 0, "1": 1, "neg": 0, "pos": 1, "negative": 0, "positive": 1}

_DATA_HINT = (
    "Pass local data instead: --data imdb-sample (real IMDb reviews shipped with the package), a folder "
    "with train/test Parquet, CSV or JSONL files (e.g. data/imdb/), an aclImdb/ folder, or "
    "train=FILE,test=FILE."
)


@dataclass
class ReviewSplit:
    """One split of labelled reviews.

    Attributes:
        name: split name ("train", "test", ...).
        texts: review texts.
        labels: 0 = negative, 1 = positive.
        ids: where each review came from ("test.parquet:row 17", "aclImdb/test/pos/123_9.txt").
        source: the data source it was loaded from.
    """

    name: str
    texts: list[str]
    labels: list[int]
    ids: list[str]
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices) -> ReviewSplit:
        indices = list(indices)
        return ReviewSplit(
            self.name,
            [self.texts[i] for i in indices],
            [self.labels[i] for i in indices],
            [self.ids[i] for i in indices],
            self.source,
            dict(self.meta),
        )

    def label_counts(self) -> dict[int, int]:
        values, counts = np.unique(np.asarray(self.labels, dtype=np.int64), return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


def normalize_label(value, where: str) -> int:
    """Map 0/1, "0"/"1", neg/pos, negative/positive (any case) to 0 or 1.

    Raises:
        DataError: naming `where` and the value, for anything else (e.g. -1, the unlabelled marker).
    """
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, (int, np.integer)) or (isinstance(value, (float, np.floating)) and float(value).is_integer()):
        key = str(int(value))
    elif isinstance(value, str):
        key = value.strip().lower()
    else:
        key = None
    if key not in _LABEL_WORDS:
        raise DataError(
            f"{where}: label {value!r} is outside the two classes; use 0/1 or neg/pos/negative/positive "
            "(-1 marks unlabelled reviews, which cannot be used here)"
        )
    return _LABEL_WORDS[key]


def _check_text(value, where: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        raise DataError(f"{where}: text is missing; remove the row or fill in the review")
    if not isinstance(value, str):
        raise DataError(f"{where}: text is {type(value).__name__} {value!r}, not a string")
    if not value.strip():
        raise DataError(f"{where}: text is empty; remove the row or fill in the review")
    return value


def _pick_column(columns, candidates, kind: str, path: Path) -> str:
    for name in candidates:
        if name in columns:
            return name
    raise DataError(
        f"{path}: no {kind} column; expected one of {', '.join(repr(c) for c in candidates)}, "
        f"found {', '.join(repr(str(c)) for c in columns) or 'none'}"
    )


def _rows_from_table(path: Path, records: list[dict], columns, first_row: int = 1, unit: str = "row", labelled=True):
    text_col = _pick_column(columns, TEXT_COLUMNS, "text", path)
    label_col = _pick_column(columns, LABEL_COLUMNS, "label", path) if labelled else None
    texts, labels, ids = [], [], []
    for offset, record in enumerate(records):
        where = f"{path}, {unit} {first_row + offset}"
        texts.append(_check_text(record.get(text_col), where))
        labels.append(normalize_label(record.get(label_col), where) if labelled else UNLABELLED)
        ids.append(f"{path.name}:{unit} {first_row + offset}")
    return texts, labels, ids


def _read_jsonl(path: Path, labelled: bool = True):
    records, lines = [], []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            record, reason, fix = parse_json(line)  # the depth limit of predict's reader
            if reason:
                raise DataError(f"{path}, line {number}: {reason}; {fix}")
            if not isinstance(record, dict):
                raise DataError(f"{path}, line {number}: expected a JSON object with text and label fields")
            records.append(record)
            lines.append(number)
    columns = list(dict.fromkeys(k for r in records for k in r))
    for record, number in zip(records, lines, strict=True):
        for candidates in (TEXT_COLUMNS, LABEL_COLUMNS) if labelled else (TEXT_COLUMNS,):
            if not any(c in record for c in candidates):
                raise DataError(f"{path}, line {number}: field {candidates[0]!r} missing")
    texts, labels, ids = [], [], []
    for record, number in zip(records, lines, strict=True):
        t, lab, i = _rows_from_table(path, [record], columns, first_row=number, unit="line", labelled=labelled)
        texts += t
        labels += lab
        ids += i
    return texts, labels, ids


def read_file(path: Path, name: str = "", labelled: bool = True) -> ReviewSplit:
    """Read one Parquet, CSV or JSONL file of labelled reviews (of reviews alone, labels -1, with labelled=False).

    Raises:
        DataError: unknown format, unreadable file, or a bad row (naming file and row).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pandas as pd

            frame = pd.read_parquet(path)
            texts, labels, ids = _rows_from_table(
                path, frame.to_dict("records"), list(frame.columns), labelled=labelled
            )
        elif suffix == ".csv":
            import pandas as pd

            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            # rows are numbered as lines of the file: the header is line 1
            records, columns = frame.to_dict("records"), list(frame.columns)
            texts, labels, ids = _rows_from_table(path, records, columns, 2, "line", labelled)
        elif suffix in (".jsonl", ".json"):
            texts, labels, ids = _read_jsonl(path, labelled)
        else:
            raise DataError(f"{path}: unknown format {suffix!r}; use .parquet, .csv or .jsonl")
    except DataError:
        raise
    except Exception as exc:  # pandas/pyarrow parse errors
        raise DataError(f"{path}: could not be read as {suffix[1:]} ({exc})") from exc
    if not texts:
        raise DataError(f"{path}: holds no reviews")
    return ReviewSplit(name or path.stem, texts, labels, ids, str(path))


def _find_aclimdb_root(folder: Path) -> Path | None:
    for candidate in (folder, folder / "aclImdb"):
        if any((candidate / s / "pos").is_dir() and (candidate / s / "neg").is_dir() for s in ("train", "test")):
            return candidate
    return None


def _read_aclimdb(root: Path, split: str) -> ReviewSplit:
    texts, labels, ids = [], [], []
    for label, sub in ((0, "neg"), (1, "pos")):
        folder = root / split / sub
        if not folder.is_dir():
            raise DataError(f"{root}: split {split!r} is missing ({folder} not found)")
        files = sorted(folder.glob("*.txt"), key=lambda p: (len(p.stem), p.stem))
        for file in files:
            where = str(file)
            try:
                text = file.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{where}: not valid UTF-8 ({exc.reason})") from exc
            texts.append(_check_text(text, where))
            labels.append(label)
            ids.append(f"{root.name}/{split}/{sub}/{file.name}")
    if not texts:
        raise DataError(f"{root}/{split}: no review files (*.txt) under pos/ and neg/")
    return ReviewSplit(split, texts, labels, ids, str(root))


def _split_files(folder: Path, split: str) -> list[Path]:
    """The files of one split in a data folder: SPLIT.EXT or its shards SPLIT-*.EXT, in the folder or its data/.

    Raises:
        DataError: the split is there in two forms (train.csv and train.jsonl, or a file and shards): reading
            one of them silently could train on the wrong data.
    """
    found: list[tuple[str, list[Path]]] = []
    for base in (folder, folder / "data"):
        for suffix in FILE_SUFFIXES:
            exact = base / f"{split}{suffix}"
            if exact.is_file():
                found.append((str(exact), [exact]))
            shards = sorted(base.glob(f"{split}-*{suffix}"))
            if shards:
                found.append((f"{base / split}-*{suffix} ({len(shards)} files)", shards))
    if len(found) > 1:
        raise DataError(
            f"{folder}: the {split} split is there {len(found)} times ({', '.join(name for name, _ in found)}), "
            f"so which to read is a guess; keep one (move the others away), or name the files with --data "
            f"{split}=FILE,..."
        )
    return found[0][1] if found else []


def _merge(parts: list[ReviewSplit], name: str, source: str) -> ReviewSplit:
    return ReviewSplit(
        name,
        [t for p in parts for t in p.texts],
        [lab for p in parts for lab in p.labels],
        [i for p in parts for i in p.ids],
        source,
    )


def _parse_mapping(source: str) -> dict[str, str] | None:
    if "=" not in source:
        return None
    mapping = {}
    for part in source.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise DataError(f"--data {source!r}: write split files as train=PATH,test=PATH")
        mapping[key.strip()] = value.strip()
    return mapping


def _load_hub(source: str, split: str, labelled: bool = True) -> ReviewSplit:
    import datasets

    repo = HUB_ALIASES.get(source, source)
    with hub_errors(repo, "Dataset", _DATA_HINT):
        try:
            table = datasets.load_dataset(repo, split=split)
        except Exception as exc:  # datasets raises many types (DatasetNotFoundError, ConnectionError, ...)
            if isinstance(exc, ValueError) and "split" in str(exc).lower():
                raise DataError(f"dataset {repo!r} has no split {split!r} ({exc})") from exc
            raise OSError(str(exc)) from exc
    texts, labels, ids = [], [], []
    for row, record in enumerate(table):
        where = f"{repo} [{split}], row {row}"
        texts.append(_check_text(record.get("text"), where))
        labels.append(normalize_label(record.get("label"), where) if labelled else UNLABELLED)
        ids.append(f"{repo}:{split}:{row}")
    return ReviewSplit(split, texts, labels, ids, repo)


def load_split(source: str, split: str) -> ReviewSplit:
    """Load one split ("train" or "test") of a data source (see the module docstring).

    Raises:
        DataError: the source or split is missing, or a row is bad.
        HubUnreachableError: a Hub dataset was asked for and the Hub is out of reach.
    """
    source = str(source)
    if source in PACKAGED_SOURCES:
        data = load_split(str(PACKAGED_SOURCES[source]), split)
        data.source = source
        return data
    mapping = _parse_mapping(source)
    if mapping is not None:
        if split not in mapping:
            raise DataError(f"--data {source!r} names no {split!r} file; add {split}=PATH")
        return read_file(Path(mapping[split]).expanduser(), split)
    if not is_local_reference(source):
        return _load_hub(source, split)
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"--data {source!r}: no such file or folder")
    if path.is_file():
        return read_file(path, split)
    root = _find_aclimdb_root(path)
    if root is not None:
        return _read_aclimdb(root, split)
    files = _split_files(path, split)
    if not files:
        found = sorted(p.name for p in path.iterdir())[:10]
        raise DataError(
            f"{path}: split {split!r} is missing; expected {split}.parquet, {split}.csv or {split}.jsonl "
            f"(or an aclImdb/ layout); found: {', '.join(found) or 'nothing'}"
        )
    return _merge([read_file(f, split) for f in files], split, str(path))


def load_unlabelled(source: str) -> ReviewSplit | None:
    """The unlabelled reviews a data source holds beside train and test (labels -1), or None where it has none:
    the Hub dataset's `unsupervised` split (stanfordnlp/imdb), unsupervised.parquet/.jsonl/.csv in a local folder
    (also Hub-style shards), aclImdb/train/unsup/*.txt, or an `unsupervised=FILE` entry of train=F,test=F.

    Raises:
        DataError: the split exists and a row is bad (naming the file and row).
        HubUnreachableError: a Hub dataset was asked for and the Hub is out of reach.
    """
    source = str(source)
    if source in PACKAGED_SOURCES:
        return None
    mapping = _parse_mapping(source)
    if mapping is not None:
        path = mapping.get(UNLABELLED_SPLIT)
        return read_file(Path(path).expanduser(), UNLABELLED_SPLIT, labelled=False) if path else None
    if not is_local_reference(source):
        try:
            return _load_hub(source, UNLABELLED_SPLIT, labelled=False)
        except DataError:  # a dataset without such a split
            return None
    path = Path(source).expanduser()
    if not path.is_dir():
        return None
    root = _find_aclimdb_root(path)
    if root is not None:
        return _read_aclimdb_unsup(root)
    files = _split_files(path, UNLABELLED_SPLIT)
    if not files:
        return None
    return _merge([read_file(f, UNLABELLED_SPLIT, labelled=False) for f in files], UNLABELLED_SPLIT, str(path))


def _read_aclimdb_unsup(root: Path) -> ReviewSplit | None:
    folder = root / "train" / "unsup"
    files = sorted(folder.glob("*.txt"), key=lambda p: (len(p.stem), p.stem)) if folder.is_dir() else []
    if not files:
        return None
    texts, ids = [], []
    for file in files:
        try:
            texts.append(_check_text(file.read_text(encoding="utf-8"), str(file)))
        except UnicodeDecodeError as exc:
            raise DataError(f"{file}: not valid UTF-8 ({exc.reason})") from exc
        ids.append(f"{root.name}/train/unsup/{file.name}")
    return ReviewSplit(UNLABELLED_SPLIT, texts, [UNLABELLED] * len(texts), ids, str(root))


def source_paths(source: str | os.PathLike | None, option: str = "--data") -> dict[str, list[str]]:
    """The local files and folders a data source reads, in every spelling --data takes (a folder, a file,
    train=F,test=F), as an outputs.Inputs entry: {"the --data source": [paths]}; empty for the Hub, the shipped
    sample or None.

    Raises:
        DataError: a malformed train=F,test=F spelling.
    """
    if source is None or str(source) in PACKAGED_SOURCES:
        return {}
    mapping = _parse_mapping(str(source))
    if mapping is not None:
        return {f"the {option} {split} file": [str(Path(path).expanduser())] for split, path in mapping.items()}
    if not is_local_reference(source):
        return {}
    return {f"the {option} source": [str(Path(str(source)).expanduser())]}


def is_single_file(source: str) -> bool:
    """True when a data source is one file, which cannot provide both train and test."""
    return _parse_mapping(str(source)) is None and Path(str(source)).expanduser().is_file()


def stratified_sample(data: ReviewSplit, n: int | None, seed: int = 42) -> ReviewSplit:
    """At most `n` reviews with both labels in their original proportion, in original order.

    Returns the split unchanged when `n` is None or not smaller than it.
    """
    if n is None or n >= len(data):
        return data
    if n < 2:
        raise DataError(f"sample size {n}: use at least 2 so both labels stay present")

    indices = np.arange(len(data))
    stratify = data.labels if len(data.label_counts()) > 1 else None
    chosen, _ = train_test_split(indices, train_size=n, stratify=stratify, random_state=seed)
    return data.subset(sorted(int(i) for i in chosen))


def train_validation_split(data: ReviewSplit, val_size: float | int, seed: int = 42) -> tuple[ReviewSplit, ReviewSplit]:
    """Carve a stratified, seeded validation split out of the training split.

    Args:
        val_size: a fraction in (0, 1) or a number of reviews.
    """

    if isinstance(val_size, float) and not 0 < val_size < 1:
        raise DataError(f"val_size={val_size!r}: use a fraction between 0 and 1 or a count of reviews")
    indices = np.arange(len(data))
    try:
        train_idx, val_idx = train_test_split(indices, test_size=val_size, stratify=data.labels, random_state=seed)
    except ValueError as exc:
        raise DataError(f"cannot carve a validation split of {val_size!r} from {len(data)} reviews: {exc}") from exc
    train, val = data.subset(sorted(train_idx)), data.subset(sorted(val_idx))
    train.name, val.name = "train", "validation"
    return train, val
