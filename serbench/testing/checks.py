"""What every conformance check reports, and synthetic inputs shared by the checks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from serbench.specs import ConfigError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

AUDIO_SECONDS = (1.25, 0.8, 0.45)


TEXTS = (
    "I can't believe you did that again, this is so annoying!",
    "Hello.",
    "We finally won the match and everybody was cheering.",
)


@dataclass(frozen=True)
class Check:
    """One conformance check: what was checked, whether it held, and the numbers behind it."""

    name: str
    ok: bool
    detail: str


def sample_audio(sample_rate: int, seconds: tuple[float, ...] = AUDIO_SECONDS
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """A zero-padded batch of voiced-like audio (gliding harmonics plus a little noise)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([round(s * sample_rate) for s in seconds])
    batch = torch.zeros(len(seconds), int(lengths.max()))
    for i, n in enumerate(lengths.tolist()):
        t = torch.arange(n, dtype=torch.float64) / sample_rate
        f0 = 120.0 + 60.0 * i + 40.0 * t / max(t[-1].item(), 1e-9)
        phase = 2 * math.pi * torch.cumsum(f0, 0) / sample_rate
        voiced = sum(torch.sin(k * phase) / k for k in range(1, 6))
        envelope = 0.5 - 0.5 * torch.cos(2 * math.pi * t * 3)
        noise = 0.01 * torch.randn(n, generator=gen, dtype=torch.float64)
        batch[i, :n] = (0.3 * envelope * voiced + noise).float()
    return batch, lengths


def _describe(exc: Exception) -> str:
    """A broken contract or a user error speaks for itself; anything else keeps its type."""
    return str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
