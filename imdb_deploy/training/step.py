"""The optimizer and the training step that `train` uses, in a module light enough for scripts/gpu_check.py
to import on a machine that has only torch, accelerate and transformers: it times this exact step.
"""

from __future__ import annotations

import torch


def make_optimizer(model, lr: float, weight_decay: float):
    """AdamW with the BERT recipe's decay: every weight but biases and LayerNorm weights."""

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)], "weight_decay": weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr)


def training_step(accelerator, model, batch, optimizer, scheduler):
    """One forward/backward on `batch` through accelerate (gradient accumulation and mixed precision
    included); the optimizer and schedule step when accelerate says the accumulation is complete.

    Returns:
        The batch's loss tensor (still on the device).
    """
    with accelerator.accumulate(model):
        loss = model(**batch).loss
        accelerator.backward(loss)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return loss
