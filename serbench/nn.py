"""The public toolkit for method authors: which hidden state to use (one layer or the SUPERB
weighted sum), masked mean and statistics pooling, the upstream's hidden states whether frozen
(cached) or fine-tuned, one AdamW helper, and the exception a model raises when its fit is done.

Every first-party method is built from these, as a third-party one would be, so a ``layer``
option means the same thing everywhere. Imported from ``build`` functions and model modules only:
torch is imported at the top (``serbench list`` never imports this module).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from serbench import Batch, BuildContext, ConfigError
from serbench.run.devices import resolve_device
from serbench.run.training import BudgetExhausted
from serbench.run.training import adamw as _adamw


def masked_mean(frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(B, T, D)`` -> ``(B, D)``: the mean over each row's valid frames.

    Lengths are clamped to ``[1, T]``, so pre-pooled features (``T = 1``) pass through whatever
    frame count the harness reports with them.
    """
    total = frames.shape[1]
    if total == 1:  # pre-pooled: the mean of one frame is the frame (a view: no copy back)
        return frames.reshape(frames.shape[0], frames.shape[2])
    lengths = lengths.to(frames.device).clamp(1, total)
    mask = (torch.arange(total, device=frames.device)[None, :] < lengths[:, None]).to(frames.dtype)
    return (frames * mask[..., None]).sum(dim=1) / lengths[:, None].to(frames.dtype)


def masked_stats(frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(B, T, D)`` -> ``(B, 2D)``: statistics pooling, the mean and the standard deviation over
    each row's valid frames side by side (the standard deviation of one frame is 0)."""
    mean = masked_mean(frames, lengths)
    total = frames.shape[1]
    if total == 1:
        return torch.cat([mean, torch.zeros_like(mean)], dim=1)
    lengths = lengths.to(frames.device).clamp(1, total)
    mask = (torch.arange(total, device=frames.device)[None, :] < lengths[:, None]).to(frames.dtype)
    var = ((frames - mean[:, None]) ** 2 * mask[..., None]).sum(dim=1) / lengths[:, None]
    return torch.cat([mean, var.clamp_min(0).sqrt()], dim=1)


class LayerSelect(nn.Module):
    """One hidden state out of ``L``: a softmax-weighted sum (SUPERB), the last, or index ``k``.

    ``choice`` is the method option ``layer``: ``"weighted"``, ``"last"`` or an integer (negative
    counts from the end).
    """

    def __init__(self, num_layers: int, choice: Any, method: str) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.index: int | None = None
        text = str(choice).strip()
        if text == "weighted":
            self.weights = nn.Parameter(torch.zeros(num_layers))
        elif text == "last":
            self.index = num_layers - 1
        else:
            try:
                index = int(text)
            except ValueError:
                index = num_layers  # reported below
            if not -num_layers <= index < num_layers:
                raise ConfigError(
                    f"method {method}: option layer must be 'weighted', 'last' or a layer index "
                    f"in [{-num_layers}, {num_layers - 1}] (the upstream has {num_layers} hidden "
                    f"states), got {choice!r}"
                )
            self.index = index % num_layers

    def forward(self, hidden: Sequence[torch.Tensor] | torch.Tensor,
                layers: Sequence[int] | None = None) -> torch.Tensor:
        """``(B, T, D)`` from ``L`` tensors ``(B, T, D)`` or from one ``(B, L, T, D)`` stack.

        ``layers`` (``Batch.layers``): the upstream layers ``hidden`` holds when the harness
        gave only those the method reads; None: every layer.
        """
        stacked = isinstance(hidden, torch.Tensor)
        count = hidden.shape[1] if stacked else len(hidden)
        held = list(range(self.num_layers)) if layers is None else list(layers)
        if count != len(held):
            raise ValueError(f"expected {len(held)} hidden states, got {count}")
        if self.index is not None:
            if self.index not in held:
                raise ValueError(f"layer {self.index} was selected but the batch holds layers "
                                 f"{held}: declare the option in MethodSpec.layer_option")
            at = held.index(self.index)
            return (hidden[:, at] if stacked else hidden[at]).float()
        if len(held) != self.num_layers:
            raise ValueError(f"a weighted sum needs all {self.num_layers} layers, the batch "
                             f"holds {held}")
        if not stacked:
            hidden = torch.stack([h.float() for h in hidden], dim=1)
        b, n, t, d = hidden.shape
        weights = torch.softmax(self.weights, dim=0).expand(b, 1, n)
        # one batched (1 x L) @ (L x T*D) product: no copy of the layers
        return torch.bmm(weights, hidden.float().reshape(b, n, t * d)).view(b, t, d)


def cached_stack(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen upstream's hidden states as one ``(B, L, T, D)`` tensor, and valid frames."""
    hidden, lengths = cached_hidden(batch)
    if batch.stacked is not None:
        return batch.stacked, lengths
    return torch.stack(hidden, dim=1), lengths


def cached_hidden(batch: Batch) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The frozen upstream's hidden states the harness put in the batch."""
    if batch.features is None:
        raise ValueError("this model trains on cached upstream features, but the batch has none")
    return batch.features, batch.lengths


def upstream_hidden(upstream: nn.Module | None, batch: Batch
                    ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Hidden states from the fine-tuned ``upstream`` (waveforms in the batch) or from the cache."""
    if upstream is None:
        return cached_hidden(batch)
    if batch.waveforms is None:
        raise ValueError("this model fine-tunes its upstream, but the batch carries no waveforms")
    hidden, lengths = upstream(batch.waveforms, batch.lengths)
    return list(hidden), lengths


def finetuned_upstream(ctx: BuildContext) -> nn.Module | None:
    """The upstream a method trains inside its model when it fine-tunes (``ctx.finetune_upstream``),
    every parameter trainable; ``None`` on frozen features, which the harness serves from its
    cache (pass the result to :func:`upstream_hidden`)."""
    if not ctx.finetune_upstream:
        return None
    upstream = ctx.load_upstream()
    upstream.requires_grad_(True)
    return upstream


def pretrained_and_new_adamw(model: nn.Module, pretrained_lr: float, lr: float,
                             pretrained: tuple[str, ...] = ("upstream.",)
                             ) -> torch.optim.Optimizer:
    """AdamW with the pretrained parts (parameters whose names start with ``pretrained``) at
    ``pretrained_lr`` and every new part at ``lr``: the usual split when fine-tuning."""
    named = list(model.named_parameters())
    old = [p for n, p in named if n.startswith(pretrained)]
    new = [p for n, p in named if not n.startswith(pretrained)]
    return adamw([(old, pretrained_lr), (new, lr)])


def adamw(groups: list[tuple[list[nn.Parameter], float]]) -> torch.optim.Optimizer:
    """AdamW without weight decay over ``(parameters, lr)`` groups, skipping frozen parameters
    and groups left empty (a weight-free upstream has nothing to fine-tune)."""
    kept = [
        {"params": [p for p in params if p.requires_grad], "lr": lr} for params, lr in groups
    ]
    return _adamw([g for g in kept if g["params"]])


__all__ = [
    "BudgetExhausted",
    "LayerSelect",
    "adamw",
    "cached_hidden",
    "cached_stack",
    "finetuned_upstream",
    "masked_mean",
    "masked_stats",
    "pretrained_and_new_adamw",
    "resolve_device",
    "upstream_hidden",
]
