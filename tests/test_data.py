import json

import pandas as pd
import pytest

from imdb_deploy.errors import DataError, HubUnreachableError
from imdb_deploy.rows.labelled import load_split, normalize_label, stratified_sample, train_validation_split


def write_frame(path, texts, labels):
    frame = pd.DataFrame({"text": texts, "label": labels})
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    elif path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        path.write_text(
            "".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in zip(texts, labels, strict=True))
        )


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_folder_of_split_files(tmp_path, suffix):
    write_frame(tmp_path / f"train{suffix}", ["good film", "bad film"], ["pos", "neg"])
    write_frame(tmp_path / f"test{suffix}", ["great", "awful", "fine"], ["1", "0", "positive"])
    train, test = load_split(str(tmp_path), "train"), load_split(str(tmp_path), "test")
    assert train.labels == [1, 0] and test.labels == [1, 0, 1]
    assert test.texts == ["great", "awful", "fine"]
    assert test.ids[0].startswith(f"test{suffix}:")


def test_hub_style_shards_inside_data_folder(tmp_path):
    (tmp_path / "data").mkdir()
    write_frame(tmp_path / "data" / "test-00000-of-00002.parquet", ["a"], [0])
    write_frame(tmp_path / "data" / "test-00001-of-00002.parquet", ["b"], [1])
    assert load_split(str(tmp_path), "test").texts == ["a", "b"]


def test_aclimdb_layout(tmp_path):
    root = tmp_path / "aclImdb"
    for split in ("train", "test"):
        for sub, text in (("pos", "loved it"), ("neg", "hated it")):
            (root / split / sub).mkdir(parents=True)
            (root / split / sub / "10_9.txt").write_text(text)
            (root / split / sub / "2_1.txt").write_text(text + "!")
    test = load_split(str(tmp_path), "test")  # the folder that holds aclImdb/ works too
    assert test.labels == [0, 0, 1, 1]
    assert test.ids[0] == "aclImdb/test/neg/2_1.txt"


def test_single_file_and_explicit_mapping(tmp_path):
    write_frame(tmp_path / "a.csv", ["x y", "z"], [0, 1])
    write_frame(tmp_path / "b.jsonl", ["w"], [1])
    assert load_split(str(tmp_path / "a.csv"), "test").texts == ["x y", "z"]
    mapping = f"train={tmp_path / 'a.csv'},test={tmp_path / 'b.jsonl'}"
    assert load_split(mapping, "test").texts == ["w"]
    with pytest.raises(DataError, match="names no 'validation' file; add validation=PATH"):
        load_split(mapping, "validation")


@pytest.mark.parametrize(
    "texts, labels, message",
    [
        (["good", "bad"], [1, -1], r"a\.parquet, row 2: label -1 is outside the two classes"),
        (["good", "bad"], ["1", "maybe"], r"row 2: label 'maybe' is outside the two classes"),
        (["good", "   "], [1, 0], r"a\.parquet, row 2: text is empty"),
        (["good", None], [1, 0], r"row 2: text is missing"),
    ],
)
def test_bad_rows_name_file_row_and_problem(tmp_path, texts, labels, message):
    pd.DataFrame({"text": texts, "label": labels}).to_parquet(tmp_path / "a.parquet")
    with pytest.raises(DataError, match=message):
        load_split(str(tmp_path / "a.parquet"), "test")


def test_missing_columns_list_what_was_found(tmp_path):
    pd.DataFrame({"body": ["x"], "label": [1]}).to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(DataError, match=r"no text column; expected one of 'text', 'review', found 'body', 'label'"):
        load_split(str(tmp_path / "a.csv"), "test")


def test_csv_rows_are_numbered_as_file_lines(tmp_path):
    (tmp_path / "a.csv").write_text("text,label\ngood,1\n,0\n")
    with pytest.raises(DataError, match=r"a\.csv, line 3: text is empty"):
        load_split(str(tmp_path / "a.csv"), "test")


def test_jsonl_errors_name_the_line(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "good", "label": 1}\n{"text": "bad", \n')
    with pytest.raises(DataError, match=r"a\.jsonl, line 2: not valid JSON"):
        load_split(str(tmp_path / "a.jsonl"), "test")
    (tmp_path / "b.jsonl").write_text('{"text": "good", "label": 1}\n{"text": "bad"}\n')
    with pytest.raises(DataError, match=r"b\.jsonl, line 2: field 'label' missing"):
        load_split(str(tmp_path / "b.jsonl"), "test")


def test_non_string_text_is_named(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "good", "label": 1}\n{"text": 5, "label": 0}\n')
    with pytest.raises(DataError, match=r"a\.jsonl, line 2: text is int 5, not a string"):
        load_split(str(tmp_path / "a.jsonl"), "test")


def test_missing_split_and_missing_path(tmp_path):
    write_frame(tmp_path / "train.parquet", ["a"], [1])
    with pytest.raises(DataError, match=r"split 'test' is missing; expected test\.parquet.*found: train\.parquet"):
        load_split(str(tmp_path), "test")
    with pytest.raises(DataError, match="no such file or folder"):
        load_split(str(tmp_path / "nope"), "test")


def test_hub_dataset_offline_says_so_and_shows_local_option():
    with pytest.raises(
        HubUnreachableError,
        match=r"'stanfordnlp/imdb'.*Hub may be out of reach.*--data imdb-sample.*data/imdb/",
    ):
        load_split("imdb", "test")


def test_labels_accept_the_documented_spellings():
    assert [normalize_label(v, "x") for v in (0, 1, "0", "1", "NEG", "pos", "Negative", "positive", 1.0)] == [
        0,
        1,
        0,
        1,
        0,
        1,
        0,
        1,
        1,
    ]


def test_stratified_sample_and_validation_split_keep_both_labels(toy_data_dir):
    train = load_split(str(toy_data_dir), "train")
    sample = stratified_sample(train, 20, seed=1)
    assert len(sample) == 20 and sample.label_counts() == {0: 10, 1: 10}
    assert sample.ids == stratified_sample(train, 20, seed=1).ids  # seeded
    rest, val = train_validation_split(train, 0.1, seed=1)
    assert len(val) == 40 and val.label_counts() == {0: 20, 1: 20}
    assert not set(val.ids) & set(rest.ids)
