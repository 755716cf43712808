"""Condition names as a reader writes them (``method(opt=value)@upstream``, quoted values,
dataset options) and as tables print them: parsing, matching a stored run, natural order."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from serbench.specs import ConfigError

_SPECIAL = set(',[]/="\\')

def natural(value: Any) -> tuple[int, int | str]:
    """Sort key putting fold and seed ``2`` before ``10``."""
    text = str(value)
    return (0, int(text)) if text.isdigit() else (1, text)


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if _SPECIAL & set(text) or text != text.strip():
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def format_options(options: Mapping[str, Any]) -> str:
    if not options:
        return ""
    return "[" + ",".join(f"{k}={format_value(v)}" for k, v in sorted(options.items())) + "]"


def condition_name(method: str, options: Mapping[str, Any], upstream: str) -> str:
    """``method[options]/upstream``; an upstream holding ``/`` (``hf:org/model``, ``hf:/dir``) is
    quoted as a value is, so the name can be passed back to ``compare`` and ``--baseline``."""
    return f"{method}{format_options(options)}/{format_value(upstream)}"


def _tokens(text: str) -> list[str]:
    """``text`` cut at the unquoted ``[``, ``]``, ``/`` and ``,`` (kept as tokens of their own);
    quoted stretches stay in their token with their quotes and escapes."""
    out, cur, quoted, i = [], "", False, 0
    while i < len(text):
        ch = text[i]
        if quoted and ch == "\\" and i + 1 < len(text):
            cur += text[i : i + 2]
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        if not quoted and ch in "[]/,":
            out += [cur, ch]
            cur = ""
        else:
            cur += ch
        i += 1
    if quoted:
        raise ValueError("unclosed quote")
    return [t for t in out + [cur] if t]


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def _parse_name(text: str) -> tuple[str, list[str], str, list[str]] | None:
    """(method, its option tokens, upstream, its option tokens) of ``m[..]/u[..]``, or None."""
    try:
        tokens = _tokens(text)
    except ValueError:
        return None
    parts: list[tuple[str, list[str]]] = []
    i = 0
    while i < len(tokens):
        name, opts, i = tokens[i], [], i + 1
        if name in "[]/,":
            return None
        if i < len(tokens) and tokens[i] == "[":
            if "]" not in tokens[i:]:
                return None
            end = tokens.index("]", i)
            opts, i = tokens[i + 1 : end], end + 1
        parts.append((_unquote(name), opts))
        if i < len(tokens):
            if tokens[i] != "/":
                return None
            i += 1
            if i == len(tokens):
                return None
    if len(parts) != 2 or any("]" in o or "[" in o or "/" in o for _, o in parts):
        return None
    return parts[0][0], parts[0][1], parts[1][0], parts[1][1]


@dataclass(frozen=True)
class ConditionName:
    """What the user typed to pick a condition: method, upstream and option texts."""

    method: str
    upstream: str
    options: Mapping[str, str]

    @classmethod
    def parse(cls, text: str, what: str = "condition") -> ConditionName:
        parsed = _parse_name(text.strip())
        if not parsed or (parsed[1] and parsed[3]):
            raise ConfigError(f"{what} {text!r} is not METHOD/UPSTREAM or METHOD[key=value,...]"
                              "/UPSTREAM, e.g. linear[normalize=speaker]/fbank (quote a value "
                              'holding a comma: k_values="50,100")')
        method, m_opts, upstream, u_opts = parsed
        opts: dict[str, str] = {}
        for item in (t for t in m_opts or u_opts if t != ","):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise ConfigError(f"{what} {text!r}: option {item!r} is not key=value")
            opts[key.strip()] = _unquote(value)
        return cls(method, upstream, opts)

    def matches(self, cond: Any) -> bool:
        """Whether a stored condition (serbench.judge.conditions.Condition) is the one named."""
        if (cond.method, cond.upstream) != (self.method, self.upstream):
            return False
        if set(cond.options) != set(self.options):
            return False
        return all(_same(text, cond.options[k]) for k, text in self.options.items())

    def __str__(self) -> str:
        return condition_name(self.method, self.options, self.upstream)


def _same(text: str, stored: Any) -> bool:
    if isinstance(stored, bool):
        word = text.lower()
        return word in (("true", "1", "yes", "on") if stored else ("false", "0", "no", "off"))
    if isinstance(stored, (int, float)):
        try:
            return float(text) == float(stored)
        except ValueError:
            return False
    return text == str(stored)
