"""Budget presets owned by the referee, and budgets defined in YAML."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping

from serbench.specs import Budget, ConfigError

PRESETS: dict[str, Budget] = {
    "smoke": Budget("smoke", max_steps=40, batch_seconds=60.0, max_device_seconds=120.0,
                    eval_every=20),
    "probe": Budget("probe", max_steps=1000, batch_seconds=90.0, max_device_seconds=1800.0,
                    eval_every=100),
    "finetune": Budget("finetune", max_steps=8000, batch_seconds=100.0,
                       max_device_seconds=8 * 3600.0, eval_every=500, precision="bf16"),
}

DESCRIPTIONS = {
    "smoke": "tests and demos: a few dozen steps, two minutes of compute",
    "probe": "frozen upstreams: 1,000 steps of 90 s of audio, 30 minutes of compute",
    "finetune": "full fine-tuning: 8,000 steps of 100 s of audio, 8 device-hours, bf16 on CUDA",
}

_FIELDS = {f.name: f for f in dataclasses.fields(Budget)}


def budget_from_mapping(name: str, data: Mapping[str, Any], where: str = "") -> Budget:
    """Validate one budget definition: unknown keys, wrong types and non-positive limits fail."""
    where = where or f"budget {name!r}"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: a budget must be a mapping of limits, got {data!r}")
    base = dict(dataclasses.asdict(PRESETS[data["base"]])) if data.get("base") in PRESETS else {}
    for key, value in data.items():
        if key == "base":
            if value not in PRESETS:
                raise ConfigError(f"{where}: unknown base budget {value!r} (known: "
                                  f"{', '.join(PRESETS)})")
            continue
        if key not in _FIELDS or key == "name":
            known = ", ".join(k for k in _FIELDS if k != "name")
            raise ConfigError(f"{where}: unknown key {key!r} (known: {known}, base)")
        base[key] = _check_value(key, value, where)
    missing = [k for k in ("max_steps", "batch_seconds", "max_device_seconds") if k not in base]
    if missing:
        raise ConfigError(
            f"{where}: missing {', '.join(missing)} (or give base: smoke|probe|finetune)"
        )
    base["name"] = name
    return Budget(**base)


def _check_value(key: str, value: Any, where: str) -> Any:
    if key in ("max_steps", "max_trials", "eval_every"):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{where}: {key} must be a positive integer, got {value!r}")
    elif key in ("batch_seconds", "max_device_seconds"):
        if (not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0
                or not math.isfinite(value)):
            raise ConfigError(f"{where}: {key} must be a positive number, got {value!r}")
        value = float(value)
    elif key == "precision":
        if value not in ("fp32", "bf16"):
            raise ConfigError(f"{where}: precision must be fp32 or bf16, got {value!r}")
    elif key == "device":
        if not isinstance(value, str) or not (value in ("auto", "cpu") or value.startswith("cuda")):
            raise ConfigError(f"{where}: device must be auto, cpu or cuda[:N], got {value!r}")
    return value


def load_budget_file(path: str | Path) -> dict[str, Budget]:
    """Read ``{name: {limits...}}`` from a YAML file."""
    from serbench.options import read_yaml

    path = Path(path)
    data = read_yaml(path, "budget")
    if not isinstance(data, Mapping):
        raise ConfigError(f"budget file {path}: expected a mapping of budget names to limits")
    return {n: budget_from_mapping(n, d, f"{path}: budget {n!r}") for n, d in data.items()}


def resolve_budget(name: str, extra: Mapping[str, Budget] | None = None) -> Budget:
    """A preset, a budget from ``extra`` (YAML), or a did-you-mean error."""
    import difflib

    pool = {**PRESETS, **(extra or {})}
    if name in pool:
        return pool[name]
    close = difflib.get_close_matches(name, list(pool), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(pool)}"
    raise ConfigError(
        f"unknown budget {name!r}: {hint} (or define it in a YAML file with --budgets)"
    )
