"""Published references: a paper's number beside serbench's measurement of the same condition.

A reference is a value (in percent) a paper reports for one method × upstream, the metric it is
(``war``, ``uar``, ``accuracy`` — accuracy is WAR — or ``macro_f1``), the protocol it was
measured under and its source (paper, table). A *gain* reference is a method's claimed
improvement over its own baseline (the same method with the ``over`` options), in points.

They are written in suite entries (``references:``, see :func:`parse`) or in a plugin's
``MethodSpec.references``; a run planned from a suite carries the ones of its condition in its
record (key ``references``), so ``serbench leaderboard`` finds them without the suite file.

The verdict compares the published value with the measurement's 95 % CI: ``reproduced`` when
it lies inside, ``below`` when the measurement falls short of it (the CI lies below the
published value), ``above`` when the measurement exceeds it. When the reference's protocol is not
the measured one (another protocol, other folds, a paper's own caveat), ``protocol`` says how.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from serbench.specs import ConfigError

METRIC_KEYS = ("war", "uar", "accuracy", "macro_f1")
MEASURED_AS = {"war": "war", "accuracy": "war", "uar": "uar", "macro_f1": "macro_f1"}
REF_KEYS = ("method", "upstream", "source", "protocol", "options", "gain", "over", *METRIC_KEYS)
PROTOCOL_KEYS = ("dataset", "protocol", "folds", "dataset_options", "note")


@dataclass(frozen=True)
class Reference:
    """One published number. ``gain_over`` set: ``value`` is a claimed gain over the baseline
    with those options, in points."""

    method: str
    upstream: str
    metric: str
    value: float
    source: str = ""
    dataset: str | None = None
    protocol: str | None = None
    folds: int | None = None
    dataset_options: dict[str, str] = field(default_factory=dict)
    note: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    gain_over: dict[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Reference:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def applies_to(self, method: str, upstream: str, options: Mapping[str, Any]) -> bool:
        """Same method and upstream, and every option the reference names set alike."""
        return (self.method, self.upstream) == (method, upstream) and all(
            _same(v, options.get(k)) for k, v in self.options.items())


def _same(text: str, value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return text.lower() in (("true", "1", "yes") if value else ("false", "0", "no"))
    try:
        return float(text) == float(value)
    except (TypeError, ValueError):
        return str(text) == str(value)


def _strings(where: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping of option values, got {value!r}")
    return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in value.items()}


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: expected a number in percent (e.g. 70.03), got {value!r}")
    return float(value)


def parse(where: str, items: Any, methods: Sequence[str], upstreams: Sequence[str],
          defaults: Mapping[str, Any]) -> list[Reference]:
    """References of one suite entry (or one plugin spec).

    Each item: ``method`` / ``upstream`` (may be left out when the entry has just one), one or more
    of ``war: 83.16``, ``uar: 81.43``, ``accuracy``, ``macro_f1``, ``source: text``, ``options:
    {key: value}`` (the condition it applies to), ``protocol: {dataset, protocol, folds,
    dataset_options, note}`` (defaults: the entry's own), or ``gain: {uar: 1.53}`` with ``over:
    {alpha: 0.0}`` for a claimed gain over the baseline with those options.
    ``defaults`` gives the entry's ``dataset``, ``protocol`` and ``dataset_options``.
    """
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{where}: expected a list of references, got {items!r}")
    out = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{at}: expected a mapping, got {item!r}")
        unknown = [k for k in item if k not in REF_KEYS]
        if unknown:
            raise ConfigError(f"{at}.{unknown[0]}: unknown key (known: {', '.join(REF_KEYS)})")
        method = _pick(at, "method", item.get("method"), methods)
        upstream = _pick(at, "upstream", item.get("upstream"), upstreams)
        proto = item.get("protocol", {})
        if not isinstance(proto, Mapping) or any(k not in PROTOCOL_KEYS for k in proto):
            raise ConfigError(f"{at}.protocol: expected a mapping with keys among "
                              f"{', '.join(PROTOCOL_KEYS)}, got {proto!r}")
        folds = proto.get("folds")
        if folds is not None and (not isinstance(folds, int) or isinstance(folds, bool)):
            raise ConfigError(f"{at}.protocol.folds: expected a count, got {folds!r}")
        common = dict(
            method=method, upstream=upstream, source=str(item.get("source", "")),
            dataset=proto.get("dataset", defaults.get("dataset")),
            protocol=proto.get("protocol", defaults.get("protocol")), folds=folds,
            dataset_options=_strings(f"{at}.protocol.dataset_options", proto.get(
                "dataset_options", defaults.get("dataset_options", {}))),
            note=proto.get("note"), options=_strings(f"{at}.options", item.get("options", {})))
        if "gain" in item:
            gains = item["gain"]
            if "over" not in item:
                raise ConfigError(f"{at}.over: a gain needs the baseline's options, e.g. "
                                  "over: {alpha: 0.0}")
            if not isinstance(gains, Mapping) or not gains or any(
                    k not in METRIC_KEYS for k in gains):
                raise ConfigError(f"{at}.gain: expected {{metric: points}} with metrics among "
                                  f"{', '.join(METRIC_KEYS)}, got {gains!r}")
            over = _strings(f"{at}.over", item["over"])
            out += [Reference(metric=m, value=_number(f"{at}.gain.{m}", v), gain_over=over,
                              **common) for m, v in gains.items()]
        metrics = [m for m in METRIC_KEYS if m in item]
        if not metrics and "gain" not in item:
            raise ConfigError(f"{at}: no published value: give one of {', '.join(METRIC_KEYS)} "
                              "(in percent) or a gain")
        out += [Reference(metric=m, value=_number(f"{at}.{m}", item[m]), **common)
                for m in metrics]
    return out


def _pick(at: str, key: str, value: Any, allowed: Sequence[str]) -> str:
    if value is None:
        if len(allowed) == 1:
            return allowed[0]
        raise ConfigError(f"{at}.{key}: missing; the entry has several ({', '.join(allowed)})")
    if allowed and value not in allowed:
        raise ConfigError(f"{at}.{key}: {value!r} is not one of the entry's {key}s "
                          f"({', '.join(allowed)})")
    return str(value)


def from_published(pub: Mapping[str, Any], methods: Sequence[str],
                   defaults: Mapping[str, Any]) -> list[Reference]:
    """The older ``published: {metric, source, values: {upstream: number}}`` column."""
    return [Reference(method=m, upstream=u, metric=pub["metric"], value=float(v),
                      source=str(pub.get("source", "")), dataset=defaults.get("dataset"),
                      protocol=defaults.get("protocol"),
                      dataset_options=dict(defaults.get("dataset_options", {})))
            for m in methods for u, v in pub["values"].items()]


def for_condition(refs: Iterable[Reference], method: str, upstream: str,
                  options: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The references a run of this condition carries in its record: its values, and every gain
    claimed for its method × upstream (the claim then reaches the leaderboard from either side)."""
    return [r.as_dict() for r in refs if (r.method, r.upstream) == (method, upstream)
            and (r.gain_over is not None or r.applies_to(method, upstream, options))]


def gains_between(refs: Iterable[Reference], a: Any, b: Any) -> list[Reference]:
    """Claimed gains of condition ``a`` over ``b``: same method and upstream, ``b`` set as the
    claim's baseline and ``a`` not."""
    def is_base(c: Any, r: Reference) -> bool:
        return all(_same(v, c.options.get(k)) for k, v in (r.gain_over or {}).items())

    return [r for r in refs if r.gain_over is not None
            and (a.method, a.upstream) == (b.method, b.upstream) == (r.method, r.upstream)
            and r.applies_to(a.method, a.upstream, a.options) and is_base(b, r)
            and not is_base(a, r)]


def collect(store: Any, conditions: Iterable[Any], extra: Iterable[Reference] = (),
            specs: Mapping[str, Any] | None = None) -> list[Reference]:
    """Every reference known for these conditions: ``extra`` (a suite file), the plugins' method
    specs and the first record of each condition; duplicates once."""
    seen: dict[tuple[Any, ...], Reference] = {}

    def add(r: Reference) -> None:
        key = (r.method, r.upstream, r.metric, r.value, tuple(sorted(r.options.items())),
               tuple(sorted((r.gain_over or {}).items())) if r.gain_over is not None else None)
        seen.setdefault(key, r)

    for r in extra:
        add(r)
    for c in conditions:
        spec = (specs or {}).get(c.method)
        for item in getattr(spec, "references", ()) or ():
            add(item if isinstance(item, Reference) else Reference.from_dict(
                {"method": c.method, **item}))
        if c.runs:
            record = store.read_record(c.runs[0]["run_id"])
            for item in record.get("references") or ():
                add(Reference.from_dict(item))
    return list(seen.values())


def protocol_difference(r: Reference, dataset: str, protocol: str,
                        dataset_options: Mapping[str, Any], folds: int) -> str | None:
    """How the reference's protocol differs from the measured one, or None if it matches."""
    diffs = []
    if r.dataset and r.dataset != dataset:
        diffs.append(f"dataset {r.dataset} vs {dataset}")
    if r.protocol and r.protocol != protocol:
        diffs.append(f"protocol {r.protocol} vs {protocol}")
    for k, v in r.dataset_options.items():
        if k in dataset_options and not _same(v, dataset_options[k]):
            diffs.append(f"{k} {v} vs {dataset_options[k]}")
    if r.folds is not None and r.folds != folds:
        diffs.append(f"{r.folds} folds vs {folds}")
    if r.note:
        diffs.append(r.note)
    return "; ".join(diffs) or None


def verdict(published: float, ci: Sequence[float] | None) -> str:
    """``reproduced`` / ``below`` / ``above`` (the measurement relative to the published value),
    or ``no CI`` when the measurement has none (one seed)."""
    if not ci or not all(map(math.isfinite, ci)):
        return "no CI"
    lo, hi = 100 * ci[0], 100 * ci[1]
    if lo <= published <= hi:
        return "reproduced"
    return "below" if hi < published else "above"


def check(r: Reference, row: Mapping[str, Any]) -> dict[str, Any]:
    """A value reference against a leaderboard row: published, measured with CI, verdict."""
    m = MEASURED_AS[r.metric]
    return {"metric": r.metric, "published": r.value, "measured": row[m],
            "measured_ci": row[f"{m}_ci"], "verdict": verdict(r.value, row[f"{m}_ci"]),
            "protocol_differs": protocol_difference(
                r, row["dataset"], row["protocol"], row["dataset_options"], row["folds"]),
            "source": r.source}


def check_gain(r: Reference, delta: float, ci: Sequence[float] | None, dataset: str,
               protocol: str, dataset_options: Mapping[str, Any], folds: int) -> dict[str, Any]:
    """A claimed gain against the measured paired Δ (fractions) and its CI."""
    over = ", ".join(f"{k}={v}" for k, v in (r.gain_over or {}).items())
    return {"metric": r.metric, "claimed_gain": r.value, "over": over, "measured_delta": delta,
            "measured_delta_ci": ci, "verdict": verdict(r.value, ci),
            "protocol_differs": protocol_difference(r, dataset, protocol, dataset_options, folds),
            "source": r.source}


def attach(boards: Sequence[Any], refs: Sequence[Reference]) -> None:
    """Put each row's value references on it (``row["references"]``, a list)."""
    for board in boards:
        for row in board.rows:
            row["references"] = [
                check(r, row) for r in refs if r.gain_over is None
                and r.applies_to(row["method"], row["upstream"], row["options"])
                and r.dataset in (None, row["dataset"])]


# ------------------------------------------------------------------------------- rendering


def ref_rows(board: Any) -> list[list[str]]:
    """One line per (row, reference): condition, metric, published, measured [CI], verdict,
    protocol, source."""
    from serbench.judge.text import ci_text, pct

    out = []
    for row in board.rows:
        for c in row.get("references", ()):
            differs = c.get("protocol_differs")
            out.append([row["condition"], c["metric"], f"{c['published']:.2f}",
                        f"{pct(c.get('measured'))} {ci_text(c.get('measured_ci'))}",
                        c.get("verdict") or "–", f"differs: {differs}" if differs else "same",
                        c.get("source") or "–"])
    return out


REF_HEADER = ["condition", "metric", "published %", "measured % [95 % CI]", "verdict",
              "protocol", "source"]
REF_LEGEND = ("reproduced: the published value lies inside the measured 95 % CI; below: the "
              "measurement falls short of it; above: it exceeds it; no CI: one seed per fold "
              "(run --seeds 3).")


def markdown(board: Any) -> list[str]:
    rows = ref_rows(board)
    if not rows:
        return []
    from serbench.judge.text import pipe_table

    return ["", "Published references:", "", *pipe_table(REF_HEADER, rows, {2, 3}), "",
            REF_LEGEND]


def latex(board: Any) -> list[str]:
    rows = ref_rows(board)
    if not rows:
        return []
    from serbench.judge.text import tex

    lines = [r"\begin{tabular}{llrrlll}", r"\toprule",
             " & ".join(tex(h) for h in REF_HEADER) + r" \\", r"\midrule"]
    lines += [" & ".join(tex(c) for c in row) + r" \\" for row in rows]
    return [*lines, r"\bottomrule", r"\end{tabular}", ""]


def csv_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The CSV columns of a row's references, ``;``-joined when there are several."""
    refs = row.get("references") or []

    def joined(key: str) -> str:
        return ";".join("" if c[key] is None else str(c[key]) for c in refs)

    return {"published_metric": joined("metric"), "published": joined("published"),
            "reference_verdict": joined("verdict"),
            "reference_protocol_differs": joined("protocol_differs"),
            "reference_source": joined("source")}


CSV_KEYS = ("published_metric", "published", "reference_verdict", "reference_protocol_differs",
            "reference_source")


def html(board: Any) -> str:
    rows = ref_rows(board)
    if not rows:
        return ""
    from html import escape

    head = "".join(f"<th>{escape(h)}</th>" for h in REF_HEADER)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return (f'<table class="references"><caption>Published references</caption><thead><tr>'
            f"{head}</tr></thead><tbody>{body}</tbody></table><p>{escape(REF_LEGEND)}</p>")


def gain_lines(claims: Sequence[Mapping[str, Any]]) -> list[str]:
    """The lines ``serbench compare`` prints for claimed gains."""
    from serbench.judge.text import ci_text, delta_text

    out = []
    for c in claims:
        differs = (f"; protocol differs: {c['protocol_differs']}" if c["protocol_differs"]
                   else "")
        out.append(f"claimed gain over {c['over']}: {c['claimed_gain']:+.2f} {c['metric']} "
                   f"points ({c['source'] or 'no source'}); measured "
                   f"{delta_text(c['measured_delta'])} {ci_text(c['measured_delta_ci'])}: "
                   f"{c['verdict']}{differs}")
    return out


def entry_references(path: Any, where: str, entry: Mapping[str, Any], e: Any) -> list[Reference]:
    """A suite entry's ``references`` and its older ``published`` column, as references."""
    defaults = {"dataset": e.dataset, "protocol": e.protocol,
                "dataset_options": e.dataset_options}
    out = from_published(e.published, e.methods, defaults) if e.published else []
    if "references" in entry:
        try:
            out += parse(f"{where}.references", entry["references"], e.methods, e.upstreams,
                         defaults)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return out


def gain_claims(refs: Sequence[Reference], ca: Any, cb: Any, samples: Any, alpha: float,
                folds: int) -> list[dict[str, Any]]:
    """Each gain claimed for ``ca`` over ``cb`` against the measured paired Δ and its CI."""
    from serbench.judge.ranking import pair

    out = []
    for r in gains_between(refs, ca, cb):
        p = pair(ca, cb, MEASURED_AS[r.metric], samples, [], alpha)
        out.append(check_gain(r, p["delta"], p["delta_ci"], ca.dataset, ca.protocol,
                              ca.dataset_options, folds))
    return out


def claimed_gains(store: Any, table: Any, ca: Any, cb: Any, samples: Any,
                  alpha: float) -> list[dict[str, Any]]:
    """What ``serbench compare A B`` shows about gains claimed for A over B."""
    from serbench.registry import collect as components_of

    methods = components_of().methods
    specs = {ca.method: methods.items.get(ca.method)}
    refs = collect(store, [ca, cb], (), specs)
    return gain_claims(refs, ca, cb, samples, alpha, len(table.folds))
