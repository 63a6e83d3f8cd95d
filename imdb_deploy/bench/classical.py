"""The classical baseline bench sets beside the transformers: TF-IDF features and logistic regression
(scikit-learn), fitted on the same training split, timed and scored on the same reviews as every row.

It tells users what a transformer buys: on IMDb a word and bigram TF-IDF model is a strong, very fast baseline
(Maas et al., 2011 report 88-89% for bag-of-words models). Its numbers here are measured in the run, never quoted.
"""

from __future__ import annotations

import pickle
import statistics
import time
from collections.abc import Callable

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from imdb_deploy.errors import DataError
from imdb_deploy.rows.labelled import load_split

ROW = "tfidf-logreg"
TITLE = "TF-IDF (words + bigrams) + logistic regression"
# A standard recipe, not tuned on the test split: words and bigrams seen in at least 2 reviews, sublinear term
# frequencies, L2 logistic regression with C=4 (a little less regularisation than the default suits the 1.5M
# sparse features of 25,000 reviews).
SETTINGS = {"ngram_range": (1, 2), "min_df": 2, "sublinear_tf": True, "C": 4.0, "max_iter": 1000}


def classical_row(
    data: str,
    texts: list[str],
    labels: np.ndarray,
    repeats: int,
    log: Callable[[str], None],
) -> dict:
    """Fit the baseline on `data`'s training split, then time and score it on `texts` like a bench row.

    Returns:
        The row: status "ok" with reviews/s (median of `repeats` passes), accuracy, fit time, training reviews,
        model size and the settings; or status "skipped" with the reason (no training split).
    """
    try:
        train = load_split(data, "train")
    except DataError as exc:
        return {"title": TITLE, "runtime": "scikit-learn", "status": "skipped", "reason": str(exc)}
    model = make_pipeline(
        TfidfVectorizer(
            ngram_range=SETTINGS["ngram_range"], min_df=SETTINGS["min_df"], sublinear_tf=SETTINGS["sublinear_tf"]
        ),
        LogisticRegression(C=SETTINGS["C"], max_iter=SETTINGS["max_iter"]),
    )
    log(f"bench: {ROW}: fitting on {len(train):,} training reviews of {train.source} ...")
    started = time.perf_counter()
    model.fit(train.texts, train.labels)
    fit_seconds = time.perf_counter() - started
    seconds, predictions = [], None
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        predictions = model.predict(texts)
        seconds.append(time.perf_counter() - started)
    log(f"bench: {ROW}: {len(texts) / statistics.median(seconds):.0f} reviews/s")
    return {
        "title": TITLE,
        "runtime": "scikit-learn",
        "status": "ok",
        "reviews_per_s": len(texts) / statistics.median(seconds),
        "seconds": [round(s, 4) for s in seconds],
        "accuracy": float((np.asarray(predictions) == labels).mean()),
        "fit_seconds": round(fit_seconds, 2),
        "train_samples": len(train),
        "features": len(model[0].vocabulary_),
        "model_bytes": len(pickle.dumps(model)),
        "settings": {**SETTINGS, "ngram_range": list(SETTINGS["ngram_range"])},
    }
