"""Rebuild the IMDb sample shipped in imdb_deploy/resources/ from the full dataset.

    .venv/bin/python scripts/make_imdb_sample.py /path/to/imdb   # a folder with train.parquet and test.parquet

Takes a stratified, seeded sample of each split (imdb_deploy.data.stratified_sample), checks the source files
against their published sha256, and writes train.parquet / test.parquet (zstd) plus README.md with provenance.
Run it again with the same source and seed and the Parquet files come out with the same rows.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import pandas as pd

from imdb_deploy.rows.labelled import load_split, stratified_sample

RESOURCES = Path(__file__).resolve().parents[1] / "imdb_deploy" / "resources"
# Published sha256 of the full labelled splits (the Hub's stanfordnlp/imdb, as Parquet).
SOURCE_SHA256 = {
    "train.parquet": "1a89057532cebdead794df49073fbf5ee21059cd72d0b0310da059bf5c6b015c",
    "test.parquet": "7fda268b5f67d7414fcf214fece18528cfd1e9a2850a3f90dffc5047495ad5f3",
}
COUNTS = {"train": 2000, "test": 1000}
SEED = 42

README = """# IMDb sample (shipped with imdb-deploy)

A stratified, seeded sample of the IMDb Large Movie Review Dataset, so that `imdb-deploy demo` (and
`--data imdb-sample` anywhere) runs on real labelled reviews without downloading anything.

| file | reviews | negative | positive | sha256 |
| --- | --- | --- | --- | --- |
{rows}

- Columns: `text` (the review, unchanged, `<br />` tags included), `label` (0 = negative, 1 = positive),
  `source_row` (0-based row of the review in the source split file below).
- Source: the full labelled splits in the schema of the Hugging Face Hub dataset `stanfordnlp/imdb`
  (25,000 train and 25,000 test reviews), as Parquet files with these sha256:
{sources}
- Sampling: `imdb_deploy.data.stratified_sample(split, n, seed={seed})` on each split separately (sklearn
  `train_test_split` stratified by label, so both classes keep their 50/50 share), rows kept in source order.
  Train and test come from the dataset's own train and test splits, so they share no review.
- Rebuild: `.venv/bin/python scripts/make_imdb_sample.py /path/to/imdb` (checks the sha256 above first).
- Licence and reference: the dataset's authors ask that uses cite
  Andrew L. Maas, Raymond E. Daly, Peter T. Pham, Dan Huang, Andrew Y. Ng, Christopher Potts.
  "Learning Word Vectors for Sentiment Analysis." ACL 2011. https://ai.stanford.edu/~amaas/data/sentiment/
"""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder with the full train.parquet and test.parquet")
    parser.add_argument("--output", type=Path, default=RESOURCES)
    args = parser.parse_args()

    for name, expected in SOURCE_SHA256.items():
        actual = sha256(args.source / name)
        if actual != expected:
            raise SystemExit(f"{args.source / name}: sha256 {actual} is not the published {expected}")

    args.output.mkdir(parents=True, exist_ok=True)
    rows = []
    for split, n in COUNTS.items():
        sample = stratified_sample(load_split(str(args.source), split), n, seed=SEED)
        # ids read "train.parquet:row 17" with 1-based rows
        source_rows = [int(i.rsplit(" ", 1)[1]) - 1 for i in sample.ids]
        frame = pd.DataFrame({"text": sample.texts, "label": sample.labels, "source_row": source_rows})
        full = pd.read_parquet(args.source / f"{split}.parquet")
        assert (full.text.iloc[source_rows].to_numpy() == frame.text.to_numpy()).all()
        out = args.output / f"{split}.parquet"
        frame.to_parquet(out, compression="zstd", index=False)
        counts = sample.label_counts()
        rows.append(f"| {out.name} | {len(frame):,} | {counts[0]:,} | {counts[1]:,} | `{sha256(out)}` |")
        print(f"wrote {out} ({len(frame)} reviews, {out.stat().st_size / 1e6:.2f} MB)")
    sources = "\n".join(f"  - {name} `{digest}`" for name, digest in SOURCE_SHA256.items())
    (args.output / "README.md").write_text(README.format(rows="\n".join(rows), sources=sources, seed=SEED))


if __name__ == "__main__":
    main()
