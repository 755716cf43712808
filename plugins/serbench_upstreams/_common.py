"""Torch helpers every upstream module shares: device choice and padding masks.

Imported only from loaders, so torch may be imported at the top here.
"""

from __future__ import annotations

from typing import Any

import torch


def resolve_device(device: Any) -> torch.device:
    """``None`` / ``"auto"``: CUDA when present, else the CPU; anything else is taken as given."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def sample_mask(lengths: torch.Tensor, total: int) -> torch.Tensor:
    """``(B, total)`` boolean mask of the valid positions given per-row lengths."""
    return torch.arange(total, device=lengths.device)[None, :] < lengths[:, None]


def zero_padding(waveforms: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Padded samples set to zero, so results never depend on what a batcher padded with."""
    return waveforms * sample_mask(lengths.to(waveforms.device), waveforms.shape[1])
