"""``finetune``: the upstream trained end to end under a mean-pooled linear head."""

from __future__ import annotations

import torch
from torch import nn

from serbench import Batch, BuildContext
from serbench.nn import (
    LayerSelect,
    finetuned_upstream,
    masked_mean,
    pretrained_and_new_adamw,
    upstream_hidden,
)


class FineTune(nn.Module):
    """upstream -> hidden state (last by default) -> masked mean -> Linear(D, C), cross-entropy.

    The pretrained upstream and the new head learn at different rates (``upstream_lr`` vs
    ``lr``), the usual recipe for fine-tuning a self-supervised encoder.
    """

    def __init__(self, ctx: BuildContext) -> None:
        super().__init__()
        self.upstream_lr = float(ctx.options["upstream_lr"])
        self.head_lr = float(ctx.options["lr"])
        self.upstream = finetuned_upstream(ctx)
        self.layers = LayerSelect(ctx.upstream.num_layers, ctx.options["layer"], "finetune")
        self.classify = nn.Linear(ctx.upstream.hidden_size, ctx.num_classes)

    def forward(self, batch: Batch) -> torch.Tensor:
        hidden, lengths = upstream_hidden(self.upstream, batch)
        return self.classify(masked_mean(self.layers(hidden, batch.layers), lengths))

    def loss(self, batch: Batch) -> torch.Tensor:
        return nn.functional.cross_entropy(self(batch), batch.labels)

    def predict(self, batch: Batch) -> torch.Tensor:
        return self(batch)

    def configure_optimizer(self) -> torch.optim.Optimizer:
        return pretrained_and_new_adamw(self, self.upstream_lr, self.head_lr)

def build_finetune(ctx: BuildContext) -> FineTune:
    return FineTune(ctx).to(ctx.device)
