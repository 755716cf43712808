"""The frozen-upstream probes: ``linear`` (SUPERB) and ``mlp`` (EmoBox / emotion2vec)."""

from __future__ import annotations

import torch
from torch import nn

from serbench import Batch, BuildContext
from serbench.nn import LayerSelect, cached_stack, masked_mean


class LinearProbe(nn.Module):
    """SUPERB's emotion probe: weighted layer sum -> Linear(D, h) -> masked mean -> Linear(h, C).

    Every step before the pooling is linear, so the model pools first: identical outputs, and
    it trains on pre-pooled features (``inputs="pooled"``). Nothing after it is non-linear
    either, so the two layers are applied as their product ``(C x h)(h x D)``: the same function
    and gradients with the same parameters, at a quarter of the multiply-adds when the batch has
    more utterances than there are classes.
    """

    def __init__(self, ctx: BuildContext) -> None:
        super().__init__()
        hidden = int(ctx.options["hidden"])
        self.layers = LayerSelect(ctx.upstream.num_layers, ctx.options["layer"], "linear")
        self.project = nn.Linear(ctx.upstream.hidden_size, hidden)
        self.classify = nn.Linear(hidden, ctx.num_classes)

    def forward(self, batch: Batch) -> torch.Tensor:
        hidden, lengths = cached_stack(batch)
        pooled = masked_mean(self.layers(hidden, batch.layers), lengths)
        weight = self.classify.weight @ self.project.weight  # (C, D)
        bias = torch.addmv(self.classify.bias, self.classify.weight, self.project.bias)
        return torch.addmm(bias, pooled, weight.t())

    def loss(self, batch: Batch) -> torch.Tensor:
        return nn.functional.cross_entropy(self(batch), batch.labels)

    def predict(self, batch: Batch) -> torch.Tensor:
        return self(batch)


class MLPProbe(nn.Module):
    """EmoBox's probe: weighted layer sum -> Linear(D, h) + ReLU per frame -> masked mean ->
    Linear(h, C). The ReLU comes before the pooling, so it needs every frame."""

    def __init__(self, ctx: BuildContext) -> None:
        super().__init__()
        hidden = int(ctx.options["hidden"])
        self.layers = LayerSelect(ctx.upstream.num_layers, ctx.options["layer"], "mlp")
        self.frame = nn.Sequential(nn.Linear(ctx.upstream.hidden_size, hidden), nn.ReLU())
        self.classify = nn.Linear(hidden, ctx.num_classes)

    def forward(self, batch: Batch) -> torch.Tensor:
        hidden, lengths = cached_stack(batch)
        return self.classify(masked_mean(self.frame(self.layers(hidden, batch.layers)), lengths))

    def loss(self, batch: Batch) -> torch.Tensor:
        return nn.functional.cross_entropy(self(batch), batch.labels)

    def predict(self, batch: Batch) -> torch.Tensor:
        return self(batch)


def build_linear(ctx: BuildContext) -> LinearProbe:
    return LinearProbe(ctx).to(ctx.device)


def build_mlp(ctx: BuildContext) -> MLPProbe:
    return MLPProbe(ctx).to(ctx.device)
