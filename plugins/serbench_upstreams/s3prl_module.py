"""The torch side of the s3prl adapter: serbench's forward contract around ``S3PRLUpstream``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._common import resolve_device


class S3PRLModule(nn.Module):
    """``forward(waveforms (B, S), lengths (B,)) -> (hidden states (B, T, D), frames (B,))``.

    Utterances of different lengths run one at a time (exact whatever the model does with
    padding); a batch of equal lengths runs at once.
    """

    def __init__(self, upstream: nn.Module, revision: str) -> None:
        super().__init__()
        self.upstream = upstream
        self.revision = revision

    def to_device(self, device: Any) -> S3PRLModule:
        return self.to(resolve_device(device)).eval()

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor
                ) -> tuple[list[torch.Tensor], torch.Tensor]:
        lengths = lengths.to(waveforms.device)
        if bool((lengths == waveforms.shape[1]).all()):
            layers, frames = self.upstream(waveforms.float(), lengths)
            return list(layers), frames[0].long()
        items = [self.upstream(waveforms[i : i + 1, : int(n)].float(), lengths[i : i + 1])
                 for i, n in enumerate(lengths.tolist())]
        frames = torch.cat([f[0] for _, f in items]).long()
        layers = [nn.utils.rnn.pad_sequence([h[k][0, : int(f[0][0])] for h, f in items],
                                            batch_first=True)
                  for k in range(len(items[0][0]))]
        return layers, frames
