"""Benchmark suites: YAML files that name a grid of runs, validated in full before any compute.

A suite file is a mapping with these top-level keys (only ``entries`` is required):

``suite``            its name (default: the file's stem)
``description``      one line shown with the plan
``dataset``          default dataset of every entry
``protocol``         default protocol (default: the dataset's first)
``dataset_options``  default dataset options, ``{key: value}``
``budget``           default budget: a preset name, a name from ``budgets``, or an inline mapping
                     of limits (``max_steps``, ``batch_seconds``, ... or ``base: smoke``)
``budgets``          named budgets defined inline, ``{name: {limits}}``
``seeds``            default seeds: a count N (seeds 0..N-1) or a list of seeds
``folds``            default folds: a list of fold names or indices (default: every fold)
``options``          default method options, ``{key: value}``; an entry's own options override
                     them key by key
``with_baseline``    default false: also plan each method's declared baseline (see below)
``test_dataset``     cross-corpus: train on all of ``dataset``, test on all of this one (with
                     ``test_dataset_options`` and ``cross_labels``, see serbench.data.crosscorpus)
``entries``          a list of entries

Each entry takes ``methods`` and ``upstreams`` (a name or a list; required), ``options`` (method
options, ``{key: value}``, validated against every method of the entry), ``published`` (a
comparison column: ``{metric: war|uar|macro_f1, source: text, values: {upstream: number}}``,
shown beside the suite, never used to rank), ``references`` (published numbers with their
metric, protocol and source, or a claimed gain over the baseline: see
:func:`serbench.judge.references.parse`; copied into each run's record and shown by the leaderboard
beside the measured value), and may override ``dataset``, ``protocol``,
``dataset_options``, ``budget``, ``seeds``, ``folds`` and ``with_baseline``.

Baselines: a method declares the options of its paired baseline as ``MethodSpec.baseline``
(``contrastive_reg``: ``{"alpha": 0.0}``); ``with_baseline: true`` plans the same folds and
seeds once more with those options, so the paired tests compare the two directly. In a file it
requires that a method of the entry declares one; ``serbench run --suite FILE --with-baseline``
adds the baselines of whichever methods declare one.

Validation happens before any compute, in two passes: the file's structure (an unknown key or a
wrong type is one line naming the file and the key), every name, option and budget; then every
dataset is loaded and its folds and each method's requirements checked, so a missing corpus fails
here, naming the dataset and how to get it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from serbench.data.crosscorpus import CROSS_KEYS, suite_cross
from serbench.data.view import DatasetView, load_dataset
from serbench.judge.references import Reference, entry_references
from serbench.judge.references import collect as collect_references
from serbench.options import SEED_LIMIT, method_options, seed_list, short_repr
from serbench.registry import Components
from serbench.run.budgets import budget_from_mapping, resolve_budget
from serbench.run.planning import Plan, make_plan
from serbench.specs import Budget, ConfigError, MethodSpec
from serbench.store import Store

TOP_KEYS = ("suite", "description", "dataset", "protocol", "dataset_options", "budget", "budgets",
            "seeds", "folds", "options", "with_baseline", "entries", *CROSS_KEYS)
ENTRY_KEYS = ("methods", "upstreams", "options", "published", "references", "dataset", "protocol",
              "dataset_options", "budget", "seeds", "folds", "with_baseline", *CROSS_KEYS)
INHERITED = ("dataset", "protocol", "dataset_options", "budget", "seeds", "folds", "with_baseline",
             *CROSS_KEYS)
PUBLISHED_KEYS = ("metric", "source", "values")
METRICS = ("war", "uar", "macro_f1")


def baseline_of(method: MethodSpec) -> dict[str, Any] | None:
    """The options of a method's declared paired baseline (``MethodSpec.baseline``), if any."""
    return dict(method.baseline) if method.baseline else None


@dataclass
class SuitePlan:
    """One validated cell group of a suite: an entry's methods × upstreams with one option set."""

    label: str
    plan: Plan
    published: dict[str, Any] | None = None
    references: list[Reference] = field(default_factory=list)


@dataclass
class Suite:
    name: str
    path: Path
    description: str
    plans: list[SuitePlan] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return sum(len(p.plan.runs) for p in self.plans)

    def summary(self) -> list[str]:
        """Lines for the user: the suite, each plan's cells and runs, and published columns."""
        lines = [f"suite {self.name} ({self.path}): {self.description}".rstrip(": ")]
        for p in self.plans:
            lines.append(f"  {p.label}: {len(p.plan.runs)} runs, budget {p.plan.budget.name}")
            if p.published:
                values = ", ".join(f"{u} {v}" for u, v in p.published["values"].items())
                source = f" ({p.published['source']})" if p.published.get("source") else ""
                lines.append(f"    published {p.published['metric']}{source}: {values}")
        return lines


@dataclass
class _Entry:
    where: str
    methods: list[str]
    upstreams: list[str]
    options: dict[str, str]
    published: dict[str, Any] | None
    references: list[Reference]
    dataset: str
    protocol: str | None
    dataset_options: dict[str, str]
    budget: Budget
    seeds: list[int]
    folds: list[str] | None
    with_baseline: bool
    cross: dict[str, Any] = field(default_factory=dict)  # make_plan's cross-corpus arguments


class _Checker:
    """Type checks that name the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {problem}")

    def mapping(self, key: str, value: Any, known: Sequence[str] | None = None) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected a mapping, got {_kind(value)}")
        for k in value:
            if not isinstance(k, str):
                raise self.fail(key, f"keys must be strings, got {short_repr(k)}")
            if known is not None and k not in known:
                raise self.fail(f"{key}.{k}" if key else k,
                                f"unknown key (known: {', '.join(known)})")
        return dict(value)

    def names(self, key: str, value: Any) -> list[str]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(
                isinstance(v, str) and v for v in items):
            raise self.fail(key, "expected a name or a non-empty list of names, got "
                            f"{short_repr(value)}")
        return list(items)

    def text(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected a non-empty string, got {_kind(value)}")
        return value

    def boolean(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {short_repr(value)}")
        return value

    def scalars(self, key: str, value: Any) -> dict[str, str]:
        """``{key: scalar}`` as the strings a command line would give (options coerce them)."""
        out = {}
        for k, v in self.mapping(key, value).items():
            if isinstance(v, bool):
                out[k] = "true" if v else "false"
            elif isinstance(v, (int, float, str)):
                out[k] = str(v)
            else:
                raise self.fail(f"{key}.{k}", f"expected a number, string or boolean, got "
                                f"{_kind(v)}")
        return out

    def seeds(self, key: str, value: Any) -> list[int]:
        if isinstance(value, (int, list)) and value:
            try:
                return seed_list(value, "seeds")
            except (ConfigError, TypeError):
                pass
        raise self.fail(key, f"expected a positive count or a list of distinct seeds from 0 to "
                        f"{SEED_LIMIT - 1}, got {short_repr(value)}")

    def folds(self, key: str, value: Any) -> list[str]:
        if (isinstance(value, list) and value
                and all(isinstance(f, (str, int)) and not isinstance(f, bool) for f in value)):
            return [str(f) for f in value]
        raise self.fail(key, f"expected a list of fold names or indices, got {short_repr(value)}")

    def published(self, key: str, value: Any, upstreams: Sequence[str]) -> dict[str, Any]:
        pub = self.mapping(key, value, PUBLISHED_KEYS)
        metric = pub.get("metric")
        if metric not in METRICS:
            raise self.fail(f"{key}.metric", f"expected one of {', '.join(METRICS)}, got "
                            f"{short_repr(metric)}")
        values = self.mapping(f"{key}.values", pub.get("values"))
        for upstream, number in values.items():
            if upstream not in upstreams:
                raise self.fail(f"{key}.values.{upstream}", "not an upstream of this entry")
            if not isinstance(number, (int, float)) or isinstance(number, bool):
                raise self.fail(f"{key}.values.{upstream}",
                                f"expected a number, got {short_repr(number)}")
        if "source" in pub:
            self.text(f"{key}.source", pub["source"])
        return pub


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"a {type(value).__name__} ({short_repr(value)})"


def read_suite(path: str | Path) -> dict[str, Any]:
    """The YAML mapping of a suite file, or one clear error."""
    from serbench.options import read_yaml

    path = Path(path)
    data = read_yaml(path, "suite")
    if not isinstance(data, Mapping):
        raise ConfigError(f"suite file {path}: expected a mapping with an 'entries' list, got "
                          f"{_kind(data)}")
    return dict(data)


def _budgets(check: _Checker, data: Mapping[str, Any]) -> dict[str, Budget]:
    named = check.mapping("budgets", data.get("budgets", {}))
    return {n: budget_from_mapping(n, d, f"{check.path}: budgets.{n}") for n, d in named.items()}


def _budget(check: _Checker, key: str, value: Any, named: Mapping[str, Budget]) -> Budget:
    if isinstance(value, Mapping):
        return budget_from_mapping(key.replace(".", "_"), value, f"{check.path}: {key}")
    name = check.text(key, value)
    try:
        return resolve_budget(name, named)
    except ConfigError as exc:
        raise check.fail(key, str(exc)) from None


def _entries(check: _Checker, data: Mapping[str, Any], components: Components,
             force_baseline: bool) -> list[_Entry]:
    """Pass one: structure, names, options and budgets of every entry; no data is read."""
    check.mapping("", data, TOP_KEYS)
    for key in ("suite", "description"):
        if key in data:
            check.text(key, data[key])
    named = _budgets(check, data)
    raw = data.get("entries")
    if not isinstance(raw, list) or not raw:
        raise check.fail("entries", f"expected a non-empty list of entries, got {_kind(raw)}")
    out = []
    for i, item in enumerate(raw):
        where = f"entries[{i}]"
        entry = check.mapping(where, item, ENTRY_KEYS)
        merged = {**{k: data[k] for k in INHERITED if k in data}, **entry}
        for key in ("methods", "upstreams"):
            if key not in entry:
                raise check.fail(f"{where}.{key}", "missing (a name or a list of names)")
        if "dataset" not in merged:
            raise check.fail(f"{where}.dataset", "missing (set it at the top or in the entry)")
        if "budget" not in merged:
            raise check.fail(f"{where}.budget", "missing (set it at the top or in the entry)")
        methods = check.names(f"{where}.methods", entry["methods"])
        upstreams = check.names(f"{where}.upstreams", entry["upstreams"])
        options = {**check.scalars("options", data.get("options", {})),
                   **check.scalars(f"{where}.options", entry.get("options", {}))}
        e = _Entry(
            where=where, methods=methods, upstreams=upstreams, options=options,
            published=(check.published(f"{where}.published", entry["published"], upstreams)
                       if "published" in entry else None),
            dataset=check.text(f"{where}.dataset", merged["dataset"]),
            protocol=(check.text(f"{where}.protocol", merged["protocol"])
                      if "protocol" in merged else None),
            dataset_options=check.scalars(f"{where}.dataset_options",
                                          merged.get("dataset_options", {})),
            budget=_budget(check, f"{where}.budget", merged["budget"], named),
            seeds=check.seeds(f"{where}.seeds", merged.get("seeds", 1)),
            folds=check.folds(f"{where}.folds", merged["folds"]) if "folds" in merged else None,
            with_baseline=force_baseline or check.boolean(
                f"{where}.with_baseline", merged.get("with_baseline", False)),
            references=[],
            cross=suite_cross(check, where, merged),
        )
        e.references = entry_references(check.path, where, entry, e)
        try:
            components.datasets.get(e.dataset)
            for name in e.upstreams:
                components.upstreams.get(name)
            for name in e.methods:
                spec = components.methods.get(name)
                method_options(spec.name, spec.defaults, e.options)
        except ConfigError as exc:
            raise check.fail(where, str(exc)) from None
        if merged.get("with_baseline") and not baseline_groups(components, methods, {}):
            raise check.fail(f"{where}.with_baseline", f"none of {', '.join(methods)} declares a "
                             "baseline")
        out.append(e)
    return out


def baseline_groups(components: Components, methods: Sequence[str], options: Mapping[str, Any]
                    ) -> list[tuple[str, dict[str, Any], str]]:
    """``(method, options, label)`` of each declared baseline among ``methods``: the same
    options with the baseline's on top."""
    groups = []
    for name in methods:
        base = baseline_of(components.methods.get(name))
        if base:
            pairs = ", ".join(f"{k}={v}" for k, v in base.items())
            groups.append((name, {**options, **{k: str(v) for k, v in base.items()}},
                           f"baseline {pairs}"))
    return groups


def load_suite(
    path: str | Path,
    components: Components,
    *,
    data_root: str | Path | None = None,
    store: Store | None = None,
    with_baseline: bool = False,
    skip_bad_audio: bool = False,
) -> Suite:
    """Validate a suite fully (names, budgets, data, folds, requirements) and plan its runs."""
    path = Path(path)
    data = read_suite(path)
    check = _Checker(path)
    entries = _entries(check, data, components, with_baseline)
    suite = Suite(name=str(data.get("suite") or path.stem), path=path,
                  description=str(data.get("description", "")))
    views: dict[tuple[Any, ...], DatasetView] = {}
    for e in entries:
        key = (e.dataset, e.protocol, tuple(sorted(e.dataset_options.items())))
        if key not in views:
            try:
                views[key] = load_dataset(components, e.dataset, data_root, e.protocol,
                                          e.dataset_options, skip_bad_audio)
            except ConfigError as exc:
                named = "" if f"{e.dataset!r}" in str(exc) else f"dataset {e.dataset!r}: "
                raise ConfigError(f"{path}: {e.where}: {named}{exc}") from None
        try:
            groups = [(e.methods, e.options, "")]
            if e.with_baseline:
                groups += [([m], o, f" ({tag})")
                           for m, o, tag in baseline_groups(components, e.methods, e.options)]
            for methods, options, tag in groups:
                plan = make_plan(
                    components, methods=methods, upstreams=e.upstreams, dataset=e.dataset,
                    data_root=data_root, protocol=e.protocol, budget=e.budget, seeds=e.seeds,
                    folds=e.folds, options=options, dataset_options=e.dataset_options,
                    store=store, skip_bad_audio=skip_bad_audio, data=views[key],
                    references=[r.as_dict() for r in e.references], **e.cross,
                )
                label = f"{e.where}: {', '.join(methods)} × {', '.join(e.upstreams)}{tag}"
                suite.plans.append(SuitePlan(label, plan, e.published, e.references))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {e.where}: {exc}") from None
    return suite


def suite_references(path: Any, components: Any) -> list[Reference]:
    """The references of a suite file, validated without reading any corpus."""
    path = Path(path)
    return [r for e in _entries(_Checker(path), read_suite(path), components, False)
            for r in e.references]


def known(store: Any, boards: Sequence[Any], suites: Sequence[Any] = ()) -> list[Reference]:
    """References for the conditions of ``boards``: the suite files', the plugins' and the
    runs' own."""
    from serbench.registry import collect as components_of

    components = components_of()
    extra = [r for path in suites for r in suite_references(path, components)]
    specs = {name: components.methods.get(name)
             for name in {c.method for b in boards for c in b.table.conditions}
             if name in components.methods.items}
    return collect_references(store, [c for b in boards for c in b.table.conditions], extra, specs)
