"""PyTorch inference: logits of a classifier for reviews, tokenized as every stage tokenizes them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from imdb_deploy.tokenization import TokenizationSettings, encode, length_sorted_batches, pad


def torch_logits(
    model,
    tokenizer,
    texts: list[str],
    settings: TokenizationSettings,
    batch_size: int = 32,
    device=None,
    progress: bool = False,
    sort_by_length: bool = True,
) -> np.ndarray:
    """Logits of a PyTorch classifier for each text, in input order.

    Args:
        model: a sequence classifier (eval mode).
        tokenizer: its tokenizer.
        texts: the reviews.
        settings: tokenization settings (max length, truncation) the model was trained with.
        batch_size: reviews per forward pass.
        device: torch device; defaults to the model's.
        progress: show a progress bar on stderr.
        sort_by_length: batch reviews of similar length together (less padding); results keep input order.

    Returns:
        float32 array of shape (len(texts), num_labels).
    """
    encoded = encode(tokenizer, texts, settings)
    return torch_logits_from_ids(model, encoded, tokenizer.pad_token_id, batch_size, device, progress, sort_by_length)


def torch_logits_from_ids(
    model,
    encoded: Sequence[Sequence[int]],
    pad_id: int,
    batch_size: int = 32,
    device=None,
    progress: bool = False,
    sort_by_length: bool = True,
) -> np.ndarray:
    """torch_logits for reviews already tokenized (tokenization.encode), in input order."""
    device = device or next(model.parameters()).device
    lengths = [len(ids) for ids in encoded]
    if sort_by_length:
        batches = length_sorted_batches(lengths, batch_size)
    else:
        batches = [list(range(i, min(i + batch_size, len(encoded)))) for i in range(0, len(encoded), batch_size)]
    out = np.zeros((len(encoded), model.config.num_labels), dtype=np.float32)
    with torch.inference_mode():
        for batch in tqdm(batches, desc="pytorch", unit="batch", disable=not progress, leave=False):
            arrays = pad([encoded[i] for i in batch], pad_id)
            inputs = {k: torch.from_numpy(v).to(device) for k, v in arrays.items()}
            out[batch] = model(**inputs).logits.float().cpu().numpy()
    return out
