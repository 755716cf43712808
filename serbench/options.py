"""Options from the command line (``KEY=VALUE``) and YAML files, with one-line errors."""

from __future__ import annotations

import difflib
import math
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from serbench.specs import ConfigError


def parse_pairs(items: Iterable[str], what: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` → ``{"a": "1", "b": "x"}``; a malformed item is a clear error."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise ConfigError(f"{what} {item!r} is not KEY=VALUE")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


SEED_LIMIT = 2**31  # seeds are integers in [0, 2^31): numpy and torch would alias larger ones
MAX_SEEDS = 10_000  # seeds per fold: a larger count is a typo that would plan forever
INT_LIMIT = 2**31  # integer options stay within 32 bits (sizes, counts, indices)


def coerce(owner: str, key: str, value: Any, default: Any) -> Any:
    """Convert a string to the type of the option's default (bool, int, float, str).

    Numbers must be finite and within 32 bits; an option whose default is positive is a size,
    count or rate: an integer one must be at least 1, a real one at least 0.
    """
    if default is None or isinstance(default, str) or isinstance(value, bool):
        return value
    if not isinstance(value, str):  # from the Python API or YAML: checked, not converted
        if not isinstance(value, (int, float)) or isinstance(default, bool):
            return value
        value = repr(value)
    try:
        if isinstance(default, bool):
            low = value.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if isinstance(default, int):
            number: int | float = int(value)
        elif isinstance(default, float):
            number = float(value)
        else:
            return value
    except ValueError:
        kind = {"bool": "a bool", "int": "an integer", "float": "a number"}[
            type(default).__name__]
        raise ConfigError(
            f"{owner} option {key}={value!r}: expected {kind} like {default!r}"
        ) from None
    low = 1 if isinstance(default, int) else 0
    if isinstance(number, int):
        ok = (low if default > 0 else -INT_LIMIT) <= number < INT_LIMIT
        wanted = f"an integer from {low if default > 0 else -INT_LIMIT} to {INT_LIMIT - 1}"
    else:
        ok = math.isfinite(number) and (default <= 0 or number >= 0)
        wanted = "a finite number" + (" >= 0" if default > 0 else "")
    if not ok:
        raise ConfigError(f"{owner} option {key}={value}: expected {wanted}, like {default!r}")
    return number


def seed_list(seeds: Any, what: str) -> list[int]:
    """A seed count N (seeds 0..N-1, N up to ``MAX_SEEDS``) or a list of distinct seeds, each
    in [0, 2^31)."""
    if isinstance(seeds, (str, int)):
        if isinstance(seeds, bool) or not isinstance(seeds, int) or not 0 < seeds <= MAX_SEEDS:
            raise ConfigError(f"{what} must be a whole number of seeds from 1 to {MAX_SEEDS:,}, "
                              f"got {seeds}")
        return list(range(seeds))
    items = list(seeds)
    for s in items:
        check_seed(s, what)
    if len(set(items)) != len(items):
        raise ConfigError(f"{what}: seeds must be distinct, got {items}")
    return [int(s) for s in items]


def check_seed(seed: Any, what: str) -> int:
    """One seed: an integer in [0, 2^31), else one line naming ``what``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise ConfigError(f"{what}: a seed is an integer from 0 to {SEED_LIMIT - 1}, got {seed!r}")
    return seed


NORMALIZE = ("none", "global", "speaker")


@dataclass(frozen=True)
class HarnessOptions:
    """The method options the harness itself reads, declared here once: a method that lists one
    in its ``defaults`` gets this meaning. Read (and validated) by :meth:`read`."""

    normalize: str = "none"  # frozen features: none, global (training set) or speaker statistics
    text_encoder: str | None = None  # a text upstream the method's build asks for by name
    finetune_upstream: bool | None = None  # None: the method's declared finetunes_upstream
    lr: float = 1e-3  # the learning rate of the default optimiser

    @classmethod
    def read(cls, method: str, options: Mapping[str, Any]) -> HarnessOptions:
        normalize = str(options.get("normalize", "none"))
        if normalize not in NORMALIZE:
            raise ConfigError(f"method {method!r}: normalize must be none, global or speaker, "
                              f"got {options['normalize']!r}")
        text = options.get("text_encoder")
        finetune = options.get("finetune_upstream")
        return cls(normalize, None if text is None else str(text),
                   None if finetune is None else bool(finetune), float(options.get("lr", 1e-3)))


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


YAML_DEPTH = 100  # nesting levels a budget or suite file may use
YAML_NODES = 100_000  # values after expanding aliases (a "billion laughs" file has 10^9)


def read_yaml(path: str | Path, what: str) -> Any:
    """The parsed YAML of a ``what`` file (``budget``, ``suite``), or one error naming it.

    Safer than ``yaml.safe_load`` on hostile input: nesting deeper than ``YAML_DEPTH``, aliases
    that expand past ``YAML_NODES`` values, duplicate keys and non-UTF-8 text are refused.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} file {path} is not UTF-8 text (byte {exc.start}): save it "
                          "as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None
    loader = _loader_class()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > YAML_NODES:
            raise ConfigError(f"{what} file {path}: its aliases (*name) expand to more than "
                              f"{YAML_NODES:,} values; write the values out or use fewer aliases")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        first = " ".join(str(exc).split())
        raise ConfigError(f"{what} file {path} is not valid YAML: {first}") from None
    except RecursionError:
        raise ConfigError(f"{what} file {path} is nested too deeply to read") from None
    finally:
        loader.dispose()


def _loader_class() -> type:
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader with a nesting limit and duplicate keys refused."""

        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self.depth += 1
            try:
                if self.depth > YAML_DEPTH:
                    raise yaml.YAMLError(f"nested deeper than {YAML_DEPTH} levels (line "
                                         f"{self.peek_event().start_mark.line + 1})")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise yaml.YAMLError(f"duplicate key {short_repr(key)} on line {line} "
                                             f"(first on line {seen[key]})")
                    seen[key] = line
                except TypeError:  # an unhashable key: SafeLoader says so itself
                    continue
            return super().construct_mapping(node, deep)

    return Loader


def _expanded_size(node: Any, memo: dict[int, int]) -> int:
    """How many values the node stands for once every alias is expanded (aliases share nodes)."""
    known = memo.get(id(node))
    if known is not None:
        return known
    memo[id(node)] = YAML_NODES + 1  # a node inside itself (recursive alias) expands forever
    children: list[Any] = []
    if isinstance(node.value, list):
        for item in node.value:
            children += list(item) if isinstance(item, tuple) else [item]
    size = 1
    for child in children:
        size += _expanded_size(child, memo)
        if size > YAML_NODES:
            break
    memo[id(node)] = size
    return size


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr`` cut to ``limit`` characters: a value read from YAML may be large (aliases)."""
    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother = 2, limit, limit
    text = short.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
