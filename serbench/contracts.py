"""What a plugin hands back, checked where serbench receives it, with errors that name the
contract (not ``too many values to unpack`` or ``'Bad' object has no attribute 'to'``)."""

from __future__ import annotations

from typing import Any

from serbench.specs import ConfigError


class ContractError(ConfigError):
    """A plugin returned something its contract does not allow."""


def _shape(value: Any) -> str:
    if isinstance(value, tuple):
        return f"a {len(value)}-tuple"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return f"a {type(value).__name__}"


def upstream_output(name: str, out: Any) -> tuple[list[Any], Any]:
    """``forward``'s result as ``(hidden_states, lengths)``."""
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ContractError(f"upstream {name!r}: forward must return (hidden_states, lengths), "
                            f"got {_shape(out)}")
    layers, lengths = out
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ContractError(f"upstream {name!r}: forward must return hidden_states as a list of "
                            f"(B, T, D) tensors, one per layer, got {_shape(layers)}")
    return list(layers), lengths


def method_model(name: str, model: Any) -> Any:
    """``build(ctx)``'s result: a ``torch.nn.Module`` with ``loss()`` and ``predict()``."""
    import torch

    missing = [m for m in ("loss", "predict") if not callable(getattr(model, m, None))]
    if not isinstance(model, torch.nn.Module) or missing:
        lacks = f" without {' and '.join(f'{m}()' for m in missing)}" if missing else ""
        raise ContractError(f"method {name!r}: a method's build must return an nn.Module with "
                            f"loss() and predict(), got {type(model).__name__}{lacks}")
    return model
