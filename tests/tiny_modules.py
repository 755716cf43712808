"""Real tiny torch modules that the method tests train through (no weights to download)."""

from __future__ import annotations

import torch


class TinyUpstream(torch.nn.Module):
    """A real two-layer audio encoder: 10 ms frames of 160 samples -> 4 dims -> 4 dims."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(1, 4, kernel_size=160, stride=160)
        self.mix = torch.nn.Linear(4, 4)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor):  # type: ignore[no-untyped-def]
        first = self.conv(waveforms[:, None]).transpose(1, 2)
        return [first, torch.tanh(self.mix(first))], lengths // 160
