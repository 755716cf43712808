"""GMP-TL losses: AM-Softmax for utterances, masked cross-entropy against frame pseudo-labels."""

from __future__ import annotations

import torch
from torch import nn

IGNORE = -100  # the target of a padded frame


def cosine_logits(embeddings: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``(B, C)``: cosine of every embedding with every class weight vector."""
    return nn.functional.normalize(embeddings, dim=-1) @ nn.functional.normalize(weights, dim=-1).T


def am_softmax(cosines: torch.Tensor, labels: torch.Tensor, scale: float, margin: float
               ) -> torch.Tensor:
    """Additive-margin softmax (Wang et al., 2018): ``CE(s · (cos θ − m · onehot(y)), y)``."""
    onehot = nn.functional.one_hot(labels, cosines.shape[1]).to(cosines.dtype)
    return nn.functional.cross_entropy(scale * (cosines - margin * onehot), labels)


def frame_loss(logits: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    """Mean over scales of the cross-entropy of ``(B, T, K)`` logits against ``(B, T)`` targets,
    averaged over valid frames only (padded frames carry ``IGNORE``)."""
    losses = [nn.functional.cross_entropy(lg.flatten(0, 1), tg.flatten(), ignore_index=IGNORE)
              for lg, tg in zip(logits, targets, strict=True)]
    return torch.stack(losses).mean()
