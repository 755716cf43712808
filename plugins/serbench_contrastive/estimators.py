"""Mutual-information estimates between audio and text codes, and their different-emotion negatives.

Each estimator takes a critic ``score(a, t) -> (N,)`` and returns a scalar to *maximise*; the
method's loss adds ``α · (−estimate)``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

ESTIMATORS = ("bce", "mine", "infonce")

Critic = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def negative_partners(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """For each utterance ``i``, another utterance ``j`` whose text becomes ``i``'s negative.

    ``j`` is drawn uniformly among the batch's utterances of a different emotion; only when the
    batch has none does ``j`` fall back to any other utterance (``-1`` for a batch of one).
    """
    n = labels.shape[0]
    others = ~torch.eye(n, dtype=torch.bool)
    labels = labels.cpu()
    weights = (labels[:, None] != labels[None, :]).double()
    lonely = weights.sum(1) == 0
    weights[lonely] = others[lonely].double()
    out = torch.full((n,), -1, dtype=torch.long)
    usable = weights.sum(1) > 0
    if usable.any():
        out[usable] = torch.multinomial(weights[usable], 1, generator=generator).flatten()
    return out


def bce(critic: Critic, audio: torch.Tensor, text: torch.Tensor, negatives: torch.Tensor
        ) -> torch.Tensor:
    """The binary discriminator: ``mean log D(a, t) + mean log(1 − D(a, t'))``, D = σ(critic)."""
    keep = negatives >= 0
    positive = nn.functional.logsigmoid(critic(audio, text)).mean()
    negative = nn.functional.logsigmoid(-critic(audio[keep], text[negatives[keep]])).mean()
    return positive + negative


def mine(critic: Critic, audio: torch.Tensor, text: torch.Tensor, negatives: torch.Tensor
         ) -> torch.Tensor:
    """MINE's Donsker–Varadhan bound: ``mean T(a, t) − log mean exp T(a, t')``."""
    keep = negatives >= 0
    scores = critic(audio[keep], text[negatives[keep]])
    return critic(audio, text).mean() - (torch.logsumexp(scores, 0) - math.log(scores.numel()))


def infonce(critic: Critic, audio: torch.Tensor, text: torch.Tensor, labels: torch.Tensor
            ) -> torch.Tensor:
    """InfoNCE over the batch: each audio's own text against the texts of other emotions.

    ``mean_i [T(a_i, t_i) − log Σ_{j ∈ {i} ∪ other emotions} exp T(a_i, t_j)]`` (the bound's
    constant ``log N`` left out); texts of the same emotion are not counted as negatives.
    """
    n = audio.shape[0]
    pairs = critic(audio.repeat_interleave(n, 0), text.repeat(n, 1)).view(n, n)
    allowed = (labels[:, None] != labels[None, :]) | torch.eye(n, dtype=torch.bool,
                                                              device=labels.device)
    masked = pairs.masked_fill(~allowed, float("-inf"))
    return (pairs.diagonal() - torch.logsumexp(masked, 1)).mean()
