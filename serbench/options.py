"""Options from the command line (``KEY=VALUE``) and YAML files, with one-line errors."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Iterable, Mapping

from .specs import ConfigError


def parse_pairs(items: Iterable[str], what: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` → ``{"a": "1", "b": "x"}``; a malformed item is a clear error."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise ConfigError(f"{what} {item!r} is not KEY=VALUE")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def coerce(owner: str, key: str, value: Any, default: Any) -> Any:
    """Convert a string to the type of the option's default (bool, int, float, str)."""
    if not isinstance(value, str) or default is None or isinstance(default, str):
        return value
    try:
        if isinstance(default, bool):
            low = value.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except ValueError:
        kind = type(default).__name__
        raise ConfigError(
            f"{owner} option {key}={value!r}: expected a {kind} like {default!r}"
        ) from None
    return value


def method_options(
    method: str, defaults: Mapping[str, Any], raw: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(every option with defaults filled in, only those set away from their default)."""
    full = dict(defaults)
    changed: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in defaults:
            close = difflib.get_close_matches(key, list(defaults), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}?" if close else (
                f"its options: {', '.join(sorted(defaults)) or 'none'}")
            raise ConfigError(f"method {method!r} has no option {key!r}; {hint}")
        full[key] = coerce(f"method {method!r}", key, value, defaults[key])
        if full[key] != defaults[key]:
            changed[key] = full[key]
    return full, changed


def read_yaml(path: str | Path, what: str) -> Any:
    """The parsed YAML of a ``what`` file (``budget``, ``suite``), or one error naming it."""
    import yaml

    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what} file {path} does not exist") from None
    except yaml.YAMLError as exc:
        first = " ".join(str(exc).split())
        raise ConfigError(f"{what} file {path} is not valid YAML: {first}") from None
