"""A prototype classifier: one learnable vector per class, scored by scaled cosine similarity."""

from __future__ import annotations

import torch

from serbench import Batch, BuildContext


class PrototypeClassifier(torch.nn.Module):
    def __init__(self, ctx: BuildContext) -> None:
        super().__init__()
        dim = ctx.upstream.hidden_size
        self.temperature = float(ctx.options["temperature"])
        self.prototypes = torch.nn.Parameter(torch.randn(ctx.num_classes, dim) * 0.1)
        self.norm = torch.nn.LayerNorm(dim)

    def _pooled(self, batch: Batch) -> torch.Tensor:
        x = batch.features[-1]  # (B, T, D): the last layer
        mask = (torch.arange(x.shape[1], device=x.device)[None, :] < batch.lengths[:, None])
        summed = (x * mask[..., None]).sum(1)
        return summed / mask.sum(1, keepdim=True).clamp(min=1)

    def predict(self, batch: Batch) -> torch.Tensor:
        emb = torch.nn.functional.normalize(self.norm(self._pooled(batch)), dim=-1)
        protos = torch.nn.functional.normalize(self.prototypes, dim=-1)
        return self.temperature * emb @ protos.T

    def loss(self, batch: Batch) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(self.predict(batch), batch.labels)
