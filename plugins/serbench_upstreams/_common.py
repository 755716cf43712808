"""Torch helpers every upstream module shares: padding masks, and the device choice of
``serbench.nn``.

Imported only from loaders, so torch may be imported at the top here.
"""

from __future__ import annotations

import torch

from serbench.nn import resolve_device  # noqa: F401 - the loaders' device choice


def sample_mask(lengths: torch.Tensor, total: int) -> torch.Tensor:
    """``(B, total)`` boolean mask of the valid positions given per-row lengths."""
    return torch.arange(total, device=lengths.device)[None, :] < lengths[:, None]


def zero_padding(waveforms: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Padded samples set to zero, so results never depend on what a batcher padded with."""
    return waveforms * sample_mask(lengths.to(waveforms.device), waveforms.shape[1])
