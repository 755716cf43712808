"""Audio–text fusion, and the same fusion regularised by an audio–text discriminator.

``Fusion`` is the baseline: audio code (pooled upstream → Linear → ReLU) and text code (frozen
text encoder's sentence embedding → Linear → ReLU), concatenated → dropout → Linear(C).
``ContrastiveReg`` adds a critic on (audio code, text code) pairs trained to tell an utterance's
own transcript from others, with loss ``(1 − α) CE + α (−estimate)``. It
builds the fusion parts first, draws nothing from the global random stream for the critic, and
with ``α = 0`` skips the critic entirely, so it is then exactly the baseline.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from serbench import Batch, BuildContext, ConfigError
from serbench.nn import (
    LayerSelect,
    finetuned_upstream,
    masked_mean,
    pretrained_and_new_adamw,
    upstream_hidden,
)

from . import estimators

NAME = "contrastive_reg"
INFONCE_NEGATIVES = ("all", "other_emotions")


class TextEmbeddings:
    """Sentence embeddings of transcripts from a frozen text encoder, each text encoded once.

    Kept outside the module tree on purpose: the encoder is not trained, so it stays out of the
    optimiser and out of the checkpoints the loop snapshots.
    """

    def __init__(self, encoder: Any, pooling: str, device: Any) -> None:
        self.encoder, self.pooling, self.device = encoder.eval(), pooling, device
        self.cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> torch.Tensor:
        new = sorted({t for t in texts if t not in self.cache})
        if new:
            hidden, lengths = self.encoder(new)
            last = hidden[-1].float()
            pooled = last[:, 0] if self.pooling == "first" else masked_mean(last, lengths)
            self.cache.update(zip(new, pooled.to(self.device), strict=True))
        return torch.stack([self.cache[t] for t in texts])


class Fusion(nn.Module):
    """Concatenation fusion of an audio and a transcript code: the paper's baseline."""

    def __init__(self, ctx: BuildContext, name: str = "fusion") -> None:
        super().__init__()
        o = ctx.options
        self.lr, self.upstream_lr = float(o["lr"]), float(o["upstream_lr"])
        hidden = int(o["hidden"])
        self.upstream = finetuned_upstream(ctx)
        text_spec = ctx.text_encoder(str(o["text_encoder"]))
        if text_spec is None or text_spec.modality != "text":
            raise ConfigError(f"method {name}: option text_encoder {o['text_encoder']!r} is not a "
                              "text encoder (serbench list upstreams)")
        self.texts = TextEmbeddings(text_spec.loader(ctx.device), text_spec.pooling, ctx.device)
        self.layers = LayerSelect(ctx.upstream.num_layers, o["layer"], name)
        self.audio_code = nn.Sequential(nn.Linear(ctx.upstream.hidden_size, hidden), nn.ReLU())
        self.text_code = nn.Sequential(nn.Linear(text_spec.hidden_size, hidden), nn.ReLU())
        self.dropout = nn.Dropout(float(o["dropout"]))
        self.classify = nn.Linear(2 * hidden, ctx.num_classes)

    def codes(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, hidden)`` audio and text codes."""
        if batch.texts is None:
            raise ValueError("this method needs transcripts, but the batch has none")
        hidden, lengths = upstream_hidden(self.upstream, batch)
        audio = self.audio_code(masked_mean(self.layers(hidden, batch.layers), lengths))
        return audio, self.text_code(self.texts(batch.texts))

    def logits(self, audio: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.classify(self.dropout(torch.cat([audio, text], dim=-1)))

    def loss(self, batch: Batch) -> torch.Tensor:
        return nn.functional.cross_entropy(self.logits(*self.codes(batch)), batch.labels)

    def predict(self, batch: Batch) -> torch.Tensor:
        return self.logits(*self.codes(batch))

    def configure_optimizer(self) -> torch.optim.Optimizer:
        return pretrained_and_new_adamw(self, self.upstream_lr, self.lr)


class ContrastiveReg(Fusion):
    """Fusion plus a critic of (audio, text) code pairs: for ``bce`` and ``mine`` an MLP on the
    concatenated pair, for ``infonce`` the bilinear ``a W tᵀ``."""

    def __init__(self, ctx: BuildContext) -> None:
        super().__init__(ctx, NAME)
        o = ctx.options
        self.alpha = float(o["alpha"])
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"method {NAME}: option alpha must be in [0, 1], got {o['alpha']!r}")
        self.estimator = str(o["estimator"])
        if self.estimator not in estimators.ESTIMATORS:
            raise ConfigError(f"method {NAME}: option estimator must be one of "
                              f"{', '.join(estimators.ESTIMATORS)}, got {self.estimator!r}")
        self.negatives = str(o["infonce_negatives"])
        if self.negatives not in INFONCE_NEGATIVES:
            raise ConfigError(f"method {NAME}: option infonce_negatives must be one of "
                              f"{', '.join(INFONCE_NEGATIVES)}, got {self.negatives!r}")
        rate = float(o["mine_ema_rate"])
        if not 0.0 < rate <= 1.0:
            raise ConfigError(f"method {NAME}: option mine_ema_rate must be in (0, 1] (1: no bias "
                              f"correction), got {o['mine_ema_rate']!r}")
        hidden = int(o["hidden"])
        # the critic's initialisation and the negatives draw from random streams of their own,
        # so the fusion parts see exactly the baseline's random numbers (dropout masks included)
        with torch.random.fork_rng(devices=[]):
            if self.estimator == "infonce":
                self.bilinear = nn.Linear(hidden, hidden, bias=False)
            else:
                self.critic_net = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(),
                                                nn.Linear(hidden, 1))
        self.average = estimators.MovingAverage(rate)
        self.generator = torch.Generator().manual_seed(int(ctx.seed))

    def critic(self, audio: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """``(N,)`` scores of (audio, text) pairs; σ(score) is D(a, t) for ``bce``."""
        return self.critic_net(torch.cat([audio, text], dim=-1)).squeeze(-1)

    def estimate(self, audio: torch.Tensor, text: torch.Tensor, labels: torch.Tensor
                 ) -> torch.Tensor:
        """The chosen mutual-information estimate on this batch (to maximise)."""
        if self.estimator == "infonce":
            scores = audio @ self.bilinear(text).T  # (N, N): a_i W t_j
            allowed = None
            if self.negatives == "other_emotions":
                allowed = labels[:, None] != labels[None, :]
            return estimators.infonce(scores, allowed)
        negatives = estimators.negative_partners(labels, self.generator).to(audio.device)
        if not bool((negatives >= 0).any()):
            return audio.new_zeros(())
        if self.estimator == "bce":
            return estimators.bce(self.critic, audio, text, negatives)
        return estimators.mine(self.critic, audio, text, negatives, self.average)

    def loss(self, batch: Batch) -> torch.Tensor:
        audio, text = self.codes(batch)
        ce = nn.functional.cross_entropy(self.logits(audio, text), batch.labels)
        if self.alpha == 0.0:
            return ce
        return (1.0 - self.alpha) * ce - self.alpha * self.estimate(audio, text, batch.labels)


def build(ctx: BuildContext) -> ContrastiveReg:
    """``MethodSpec.build`` of ``contrastive_reg``."""
    return ContrastiveReg(ctx).to(ctx.device)
