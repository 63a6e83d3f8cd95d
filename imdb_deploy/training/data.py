"""The reviews a training run learns from: the labelled splits (train, a validation split carved from it, test)
and, for distill, unlabelled reviews (the data source's own unlabelled split, or any file of reviews)."""

from __future__ import annotations

from contextlib import ExitStack

import numpy as np

from imdb_deploy.errors import DataError, InputError
from imdb_deploy.rows.labelled import (
    UNLABELLED,
    UNLABELLED_SPLIT,
    ReviewSplit,
    is_single_file,
    load_split,
    load_unlabelled,
    stratified_sample,
    train_validation_split,
)
from imdb_deploy.rows.readers import open_reader
from imdb_deploy.rows.sources import expand_inputs

AUTO, NONE = "auto", "none"


def labelled_splits(data: str, val_size: float, max_train: int | None, max_eval: int | None, seed: int) -> dict:
    """Train, validation and test splits of `data` (sampled, stratified, seeded); no validation with val_size 0.

    Raises:
        DataError: `data` is one file (no test split), a split holds one label only, or a row is bad.
        HubUnreachableError: a Hub dataset was asked for and the Hub is out of reach.
    """
    if is_single_file(data):
        raise DataError(
            f"--data {data!r} is one file, but training needs a train and a test split: pass a folder "
            "with train/test files, an aclImdb/ folder, or train=FILE,test=FILE"
        )
    train = load_split(data, "train")
    test = load_split(data, "test")
    for split in (train, test):
        if len(split.label_counts()) < 2:
            raise DataError(f"{split.source} [{split.name}]: holds only one label {list(split.label_counts())}")
    splits = {}
    if val_size:
        size = int(val_size) if val_size >= 1 else float(val_size)
        train, val = train_validation_split(train, size, seed)
        splits["validation"] = stratified_sample(val, max_eval, seed)
    splits["train"] = stratified_sample(train, max_train, seed)
    splits["test"] = stratified_sample(test, max_eval, seed)
    return splits


def unlabelled_reviews(spec: str, data: str, text_field: str, samples: int | None, seed: int) -> ReviewSplit:
    """The unlabelled reviews distill learns from (labels -1), a seeded sample of `samples` when set.

    Args:
        spec: "auto" (the data source's unlabelled split where it has one, else none), "none", or a file,
            folder or glob of reviews in any format predict reads.
        data: the labelled data source (for "auto").
        text_field: the field or column holding the review in a file of reviews.
        samples: most reviews to keep (a seeded random sample); None keeps all.
        seed: seed of the sample.

    Raises:
        InputError: a file of reviews is unreadable, or a row is bad (naming the file, the line and the fix).
        DataError: the data source's unlabelled split has a bad row.
    """
    if spec == NONE:
        split = None
    elif spec == AUTO:
        split = load_unlabelled(data)
    else:
        split = _read_reviews(spec, text_field)
    if split is None:
        return ReviewSplit(UNLABELLED_SPLIT, [], [], [], "")
    if samples is not None and samples < len(split):
        chosen = np.sort(np.random.default_rng(seed).choice(len(split), size=samples, replace=False))
        split = split.subset(int(i) for i in chosen)
    return split


def _read_reviews(spec: str, text_field: str) -> ReviewSplit:
    """Every review of the files behind `spec`, through predict's readers (the same formats and checks)."""
    texts, ids = [], []
    files = expand_inputs([spec])
    for path in files:
        with ExitStack() as stack:
            reader = open_reader(path, stack, "auto", text_field)
            for row in reader:
                if row.reason is not None:
                    raise InputError(f"{reader.name}, {reader.unit} {row.line}: {row.reason}; {row.fix}")
                texts.append(row.text)
                ids.append(str(row.id))
    if not texts:
        raise InputError(f"--unlabelled {spec!r}: holds no reviews; name a file with one review per row")
    return ReviewSplit(UNLABELLED_SPLIT, texts, [UNLABELLED] * len(texts), ids, spec)
