"""A Hub model card for an exported folder, and the folder's files without the paths of the machine that made it.

`render_model_card` writes README.md from what the folder already says about itself: export_report.json (the
variants, the parity gate's results, the versions) and train_config.json (how a review is read, what it was
trained from). The gate's numbers go into the card's `model-index` as huggingface_hub builds it (EvalResult),
so they are the measured ones, never typed by hand.

`publishable_train_config` reduces every local path in train_config.json to a plain name (Hub ids stay), and
`machine_paths` finds what is left anywhere in a folder, so an upload publishes no path of this machine.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from huggingface_hub import EvalResult, ModelCardData

from imdb_deploy.folders import CONVERSION_REPORT, MINILM_SHA256
from imdb_deploy.rows.labelled import HUB_ALIASES, PACKAGED_SOURCES

# Where a base model or a data source that is not a Hub id came from, when the folder can tell: the offline
# base model is the published all-MiniLM-L6-v2 (its weights' sha256, convert.py), the shipped sample is real
# reviews of stanfordnlp/imdb.
KNOWN_WEIGHTS = {MINILM_SHA256: "sentence-transformers/all-MiniLM-L6-v2"}
KNOWN_DATA = {**HUB_ALIASES, **dict.fromkeys(PACKAGED_SOURCES, "stanfordnlp/imdb")}
# transformers.js's dtype for each of our ONNX variants (portable.TRANSFORMERSJS_FILES).
TRANSFORMERSJS_DTYPES = {"fp32": "fp32", "int8": "q8", "fp16": "fp16"}
DEFAULT_LICENSE = "apache-2.0"
# An absolute POSIX path (at least two parts), a home-relative or ./ path, or a Windows drive path.
_PATH = re.compile(r"(?<![\w.:/-])(?:~|\.{1,2})?/(?:[\w.@+-]+/)+[\w.@+-]*|(?<![\w])[A-Za-z]:\\[^\s\"',]+")


def is_hub_id(ref: str) -> bool:
    """True for a Hub repository id ("distilbert-base-uncased", "stanfordnlp/imdb"), not a path or URL."""
    return bool(re.fullmatch(r"[\w.-]+(/[\w.-]+)?", ref)) and not ref.startswith(".")


def plain_name(ref: str) -> str:
    """Local paths in a string reduced to their last part ("/srv/runs/minilm-2k" -> "minilm-2k", "200 reviews of
    /data/imdb [test]" -> "200 reviews of imdb [test]"); Hub ids and URLs unchanged.

    A data spec of several files ("train=/a/train.parquet,test=/b/test.parquet") has each path reduced.
    """
    if "://" in ref or (is_hub_id(ref) and not Path(ref).exists()):
        return ref
    whole = not any(c.isspace() for c in ref)
    if whole and (ref.startswith(("/", "~", "./", "../")) or re.match(r"[A-Za-z]:\\", ref) or Path(ref).exists()):
        return _last_part(ref)
    return _PATH.sub(lambda m: _last_part(m.group(0)), ref)


def _last_part(path: str) -> str:
    return re.split(r"[/\\]", path.rstrip("/\\"))[-1] or path


def _scrub(value):
    if isinstance(value, str):
        return plain_name(value)
    if isinstance(value, dict):
        return {key: _scrub(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    return value


def publishable_train_config(config: dict) -> dict:
    """train_config.json as published: every local path reduced to a plain name, Hub ids kept.

    The tokenization fields (max_length, truncation, head_tokens, label_names) are unchanged, so every stage
    reads the folder as before; `base_model`, `tokenizer`, `data_source` and the TrainConfig's model, data
    and output paths become folder names. `base_model_hub_id` keeps what a plain name can no longer prove: the
    Hub id the base model is (hub_base_model of the unscrubbed reference), or None.

    Args:
        config: the content of a train_config.json.

    Returns:
        A new dict; `config` is not changed.
    """
    return {**_scrub(config), "base_model_hub_id": _base_model_hub_id(config)}


def _base_model_hub_id(train_config: dict) -> str | None:
    """The Hub id of a train_config's base model: as recorded once published, else worked out from the reference."""
    if "base_model_hub_id" in train_config:
        return train_config["base_model_hub_id"]
    return hub_base_model(train_config.get("base_model") or (train_config.get("training") or {}).get("model"))


def publishable_export_report(report: dict) -> dict:
    """export_report.json as published: the same record with every local path reduced to a plain name
    (`output`, `source_model`, the gate's `onnx_dir`, `model` and `data`, the settings' data sources, the timing
    sample's description). `verify` then finds the source by that name (see docs/portable.md) or by --model.

    Args:
        report: the content of an export_report.json.

    Returns:
        A new dict; `report` is not changed. Its checksums still match: they cover the other files.
    """
    return _scrub(report)


def machine_paths(folder: str | os.PathLike, names: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Paths of this machine found in a folder's files: {file: [paths]}, files without any left out.

    A path of this machine starts at one of its file system's top folders (/work, /tmp, /home, /root ...), at
    ~ or at a Windows drive; graph node names such as "/distilbert/Add" start nowhere real and are not paths.
    Text files are read as text; others (ONNX graphs, weights) are searched for printable byte strings, so a
    graph that embeds the path it was written from is found too (POSIX and ~ paths only: a drive letter and a
    backslash are common in weight bytes).

    Args:
        folder: the folder to search (recursively).
        names: only these files (relative to `folder`); None: every file.
    """
    root = Path(folder)
    files = [root / name for name in names] if names is not None else sorted(p for p in root.rglob("*") if p.is_file())
    tops = {entry for entry in os.listdir("/")}
    found: dict[str, list[str]] = {}
    for path in files:
        data = path.read_bytes()
        binary = b"\0" in data[:4096]
        text = _printable(data) if binary else data.decode("utf-8", errors="replace")
        hits = sorted({m.group(0) for m in _PATH.finditer(text) if _on_this_machine(m.group(0), tops, binary)})
        if hits:
            found[str(path.relative_to(root))] = hits
    return found


def _printable(data: bytes) -> str:
    return "\n".join(chunk.decode("ascii") for chunk in re.findall(rb"[\x20-\x7e]{6,}", data))


def _on_this_machine(text: str, tops: set[str], binary: bool) -> bool:
    # In weights, "x:\\" is just bytes; a Windows path is looked for in text files only.
    if text.startswith("~") or (not binary and re.match(r"[A-Za-z]:\\", text)):
        return True
    parts = [part for part in text.split("/") if part not in ("", ".", "..")]
    return len(parts) >= 2 and parts[0] in tops


def hub_base_model(ref: str | None) -> str | None:
    """The Hub id a base model is, or was converted from; None when the folder cannot tell.

    A Hub id is itself; a local folder holding the offline base model (convert.py's conversion.json with the
    published all-MiniLM-L6-v2 weights' sha256) is that model's id.
    """
    if not ref:
        return None
    if is_hub_id(ref):
        return ref
    report = Path(ref).expanduser() / CONVERSION_REPORT
    try:
        sha256 = json.loads(report.read_text()).get("source_sha256")
    except (OSError, ValueError, AttributeError):
        return None
    return KNOWN_WEIGHTS.get(sha256)


def hub_dataset(ref: str | None) -> str | None:
    """The Hub dataset id of a data source: a Hub id or a known alias ("imdb", the shipped "imdb-sample")."""
    if not ref:
        return None
    if ref in KNOWN_DATA:
        return KNOWN_DATA[ref]
    return ref if is_hub_id(ref) and "/" in ref else None


def gate_results(report: dict, dataset: str, dataset_name: str) -> list[EvalResult]:
    """The parity gate's numbers as huggingface_hub EvalResults: per checked variant its accuracy, F1,
    precision, recall, label agreement with PyTorch and largest probability difference, plus PyTorch's own."""
    parity = report.get("parity") or {}
    common = {
        "task_type": "text-classification",
        "task_name": "Sentiment analysis",
        "dataset_type": dataset,
        "dataset_name": dataset_name,
        "dataset_split": parity.get("split"),
        "verified": False,
    }
    results = []
    rows = [("pytorch", parity.get("pytorch_metrics") or {"accuracy": parity.get("pytorch_accuracy")}, None)]
    rows += [(name, v.get("metrics") or {"accuracy": v.get("accuracy")}, v) for name, v in parity["variants"].items()]
    for name, metrics, variant in rows:
        label = "PyTorch" if variant is None else f"ONNX {name} ({variant.get('file')})"
        for key in ("accuracy", "f1", "precision", "recall"):
            if isinstance(metrics.get(key), int | float):
                results.append(
                    EvalResult(
                        metric_type=key, metric_value=round(metrics[key], 4), metric_name=f"{key}, {label}", **common
                    )
                )
        if variant is not None:
            results.append(
                EvalResult(
                    metric_type="agreement",
                    metric_value=round(variant["agreement"], 4),
                    metric_name=f"label agreement with PyTorch, {label}",
                    **common,
                )
            )
            results.append(
                EvalResult(
                    metric_type="max_prob_diff",
                    metric_value=float(f"{variant['max_prob_diff']:.3g}"),
                    metric_name=f"max |probability difference| vs PyTorch, {label}",
                    **common,
                )
            )
    return results


def render_model_card(
    report: dict,
    train_config: dict,
    model_name: str,
    *,
    base_model: str | None = None,
    dataset: str | None = None,
    license: str = DEFAULT_LICENSE,
    library_name: str = "transformers.js",
    repo_id: str | None = None,
) -> str:
    """README.md for an exported folder: Hub metadata, the gate's results in model-index form, how to run it.

    Args:
        report: export_report.json's content; its `parity` must be present (an unverified export has no
            results to publish).
        train_config: the folder's train_config.json content.
        model_name: the card's title and model-index name (e.g. the Hub repository's name).
        base_model: the Hub id it was fine-tuned from; None: worked out by hub_base_model from train_config
            (left out of the metadata when it cannot be).
        dataset: the Hub id of the data it was trained and gated on; None: worked out by hub_dataset from the
            gate's and training's data sources, else the data's plain name.
        license: the card's license (the base models' and imdb-deploy's is Apache-2.0).
        library_name: the Hub library whose snippet the page shows; the folder's onnx/ layout is transformers.js's.
        repo_id: the Hub repository the folder goes to ("user/name"), named in the usage snippets; None:
            model_name.

    Returns:
        The card's text, YAML front matter first.

    Raises:
        ValueError: the report has no parity results.
    """
    parity = report.get("parity")
    if not parity or not parity.get("variants"):
        raise ValueError("export_report.json has no parity results: run the gate (imdb-deploy verify --record)")
    training = train_config.get("training") or {}
    base_model = base_model or _base_model_hub_id(train_config)
    sources = (parity.get("data"), train_config.get("data_source"), training.get("data"))
    dataset = dataset or next((hub_dataset(s) for s in sources if hub_dataset(s)), None)
    dataset_type = dataset or plain_name(str(parity.get("data")))
    data = ModelCardData(
        library_name=library_name,
        pipeline_tag="text-classification",
        license=license,
        language=["en"],
        base_model=base_model,
        datasets=[dataset] if dataset else None,
        tags=["onnx", "sentiment-analysis", "imdb", "distilbert", "imdb-deploy"],
        model_name=model_name,
        eval_results=gate_results(report, dataset_type, plain_name(str(parity.get("data")))),
    )
    body = _body(report, train_config, model_name, repo_id or model_name, base_model, dataset_type)
    return f"---\n{data.to_yaml()}\n---\n\n{body}"


def _reading(train_config: dict) -> str:
    max_length, truncation = train_config.get("max_length"), train_config.get("truncation")
    if truncation == "head+tail":
        head = train_config.get("head_tokens")
        tail = max_length - 2 - head
        rule = f"the first {head} and the last {tail} tokens of a longer review, between [CLS] and [SEP]"
    else:
        rule = f"the first {max_length - 2} tokens of a longer review, between [CLS] and [SEP]"
    return (
        f"Trained at {max_length} tokens ({truncation} truncation): {rule}. Every graph makes this cut itself: "
        "feed it the review's full tokenization (input_ids and attention_mask of any length, padded on the "
        "right), which is why `tokenizer_config.json` sets no length limit. The rule is in `train_config.json` "
        "and in each graph's metadata (`imdb_deploy.truncation`)."
    )


def _body(report: dict, train_config: dict, model_name: str, repo_id: str, base_model: str | None, dataset: str) -> str:
    parity = report["parity"]
    versions = report.get("versions") or {}
    rows = []
    for name, v in parity["variants"].items():
        file = v.get("file", "")
        dtype = TRANSFORMERSJS_DTYPES.get(name, "")
        rows.append(
            f"| {name} | `{file}` | {dtype or '-'} | {v['accuracy']:.4f} | {100 * v['agreement']:.2f}% | "
            f"{v['max_prob_diff']:.2g} | {'pass' if v.get('passed') else 'FAIL'} |"
        )
    default = report.get("default_variant")
    labels = ", ".join(train_config.get("label_names") or [])
    base = f"`{base_model}`" if base_model else "a DistilBERT-architecture encoder"
    return f"""# {model_name}

IMDb movie-review sentiment ({labels}), fine-tuned from {base} and exported to ONNX by imdb-deploy \
{versions.get("imdb-deploy", "")}. The export's parity gate ran PyTorch and every variant on {parity["samples"]:,} \
reviews of `{dataset}` [{parity["split"]}]: PyTorch accuracy {parity["pytorch_accuracy"]:.4f}; the gate \
{"passed" if parity.get("passed") else "FAILED"}.

| variant | file | transformers.js dtype | accuracy | label agreement with PyTorch | max abs prob diff | gate |
| --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(rows)}

imdb-deploy's default variant on the CPU that exported it is `{default}`, run one review per call so that a \
review's answer does not depend on its batch. All numbers: `export_report.json`.

## How it reads a review

{_reading(train_config)}

## Use it

transformers.js (Node or the browser):

```js
import {{ pipeline }} from "@huggingface/transformers";
const classify = await pipeline("text-classification", "{repo_id}", {{ dtype: "q8" }});
console.log(await classify("A wonderful film."));
```

onnxruntime and tokenizers alone (Python): see docs/portable.md of imdb-deploy. With imdb-deploy:
`hf download {repo_id} --local-dir {model_name}`, then
`imdb-deploy predict reviews.jsonl --model {model_name}`.

Exported with onnxruntime {versions.get("onnxruntime", "")}, torch {versions.get("torch", "")},
transformers {versions.get("transformers", "")}.
"""


def unverified_card(train_config: dict, model_name: str, *, base_model: str | None = None) -> str:
    """README.md for an export made without the parity gate (--no-verify): the Hub metadata, how it reads a review,
    and that nothing vouches for its answers (no results to publish)."""
    data = ModelCardData(
        library_name="transformers.js",
        pipeline_tag="text-classification",
        license=DEFAULT_LICENSE,
        language=["en"],
        base_model=base_model,
        tags=["onnx", "sentiment-analysis", "imdb", "distilbert", "imdb-deploy"],
        model_name=model_name,
    )
    return f"""---
{data.to_yaml()}
---

# {model_name}

IMDb movie-review sentiment, exported to ONNX by imdb-deploy **without the parity gate**: nothing checked that its
answers are the PyTorch model's. Run `imdb-deploy verify {model_name} --record` before publishing it.

## How it reads a review

{_reading(train_config)}
"""
