"""The one place a device name (``auto``, ``cpu``, ``cuda[:N]``) becomes a torch device: the
local loop, the process pool, Ray workers, torchrun ranks, ``serbench validate`` and upstream
loaders (through ``serbench.nn.resolve_device``) all choose it here."""

from __future__ import annotations

from typing import Any

from serbench.specs import ConfigError


def resolve_device(name: Any = None, local_rank: int | None = None) -> Any:
    """``auto`` (or ``None``): CUDA when present, else the CPU. Under torchrun (``local_rank``
    given) each rank uses ``cuda:<local rank>``. A torch device is returned as it is."""
    import torch

    if isinstance(name, torch.device):
        return name
    name = name or "auto"
    if local_rank is not None:
        return _rank_device(name, local_rank)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but no CUDA device is available here; "
                          "use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}: use auto, cpu or cuda[:N]") from None


def _rank_device(name: str, local_rank: int) -> Any:
    import torch

    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for under torchrun, but no CUDA device is "
                          "available here; use --device cpu or auto")
    if name in ("auto", "cuda", f"cuda:{local_rank}") and torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    if name == "auto":
        return torch.device("cpu")
    raise ConfigError(f"under torchrun each rank uses cuda:<LOCAL_RANK>; got --device {name!r} "
                      "(use auto, cpu or cuda)")
