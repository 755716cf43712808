"""Helpers every upstream module shares: device choice, padding masks, revisions of local folders.

Imported only from loaders, so torch may be imported at the top here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5")


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


def folder_revision(folder: Path) -> str:
    """A hash of a local model folder's weight files (names and bytes): what a run records."""
    digest = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    for path in files:
        digest.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()[:16] if files else "none"
