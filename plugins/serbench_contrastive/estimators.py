"""Mutual-information estimates between audio and text codes, and their different-emotion negatives.

Each returns a scalar to *maximise*; the method's loss adds ``α · (−estimate)``. ``bce`` and
``mine`` take a critic of pairs ``score(a, t) -> (N,)`` (a joint network, as MINE's statistics
network is); ``infonce`` takes the ``(N, N)`` scores of every audio with every text of the batch,
which a separable (bilinear) critic gives in one product, as in the published estimator.
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


class MovingAverage(nn.Module):
    """The exponential moving average of ``mean exp T`` over batches, kept as its logarithm (no
    overflow for large critic scores) in a buffer, so checkpoints restore it with the model.

    ``rate`` is the weight of the newest batch; the first batch sets the average. ``rate = 1``
    keeps only the current batch, which makes MINE's gradient the plain (biased) one.
    """

    def __init__(self, rate: float) -> None:
        super().__init__()
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"the moving-average rate must be in (0, 1], got {rate}")
        self.rate = rate
        self.register_buffer("log_value", torch.tensor(float("nan")))

    @torch.no_grad()
    def update(self, log_mean: torch.Tensor) -> torch.Tensor:
        """Fold in one batch's ``log mean exp T``; the new log average."""
        log_mean = log_mean.detach().to(self.log_value)
        if torch.isnan(self.log_value) or self.rate == 1.0:
            self.log_value.copy_(log_mean)
        else:
            self.log_value.copy_(torch.logaddexp(self.log_value + math.log1p(-self.rate),
                                                 log_mean + math.log(self.rate)))
        return self.log_value.clone()


def mine(critic: Critic, audio: torch.Tensor, text: torch.Tensor, negatives: torch.Tensor,
         average: MovingAverage) -> torch.Tensor:
    """MINE (Belghazi et al., 2018): the Donsker–Varadhan bound
    ``mean T(a, t) − log mean exp T(a, t')`` as the value, with the bias-corrected gradient.

    The plain gradient of ``log mean exp T`` divides by the mini-batch mean of ``exp T``, a
    biased estimate of its expectation; MINE divides by a moving average of it instead:
    ``∇ mean T(a, t) − ∇ mean exp T(a, t') / EMA``. The returned tensor has the bound's value
    and that gradient.
    """
    keep = negatives >= 0
    scores = critic(audio[keep], text[negatives[keep]])
    positive = critic(audio, text).mean()
    log_mean_exp = torch.logsumexp(scores, 0) - math.log(scores.numel())
    value = positive - log_mean_exp
    log_average = average.update(log_mean_exp)
    corrected = positive - torch.exp(log_mean_exp - log_average)
    return corrected + (value - corrected).detach()


def infonce(scores: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
    """InfoNCE (van den Oord et al., 2018) from ``scores[i, j]``, the critic of audio ``i`` with
    text ``j``: ``mean_i [log n_i + s_ii − log Σ_j exp s_ij]``, a lower bound on the mutual
    information, with every other text of the batch as a negative (``n_i = N``).

    ``allowed[i, j]`` false leaves text ``j`` out of row ``i``'s negatives (the diagonal is always
    kept); ``n_i`` then counts what is left.
    """
    n = scores.shape[0]
    if allowed is not None:
        allowed = allowed | torch.eye(n, dtype=torch.bool, device=scores.device)
        counts = allowed.sum(1).to(scores.dtype)
        scores_in = scores.masked_fill(~allowed, float("-inf"))
    else:
        counts = torch.full((n,), float(n), dtype=scores.dtype, device=scores.device)
        scores_in = scores
    return (counts.log() + scores.diagonal() - torch.logsumexp(scores_in, 1)).mean()
