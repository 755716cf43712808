"""Group stored runs into conditions and tables, and load their pooled predictions.

A *condition* is (dataset, protocol, dataset options, budget signature, upstream, method, method
options set away from defaults); its runs over folds × seeds are the sample the statistics use.
A *table* holds the conditions that may be ranked together: same dataset, protocol, dataset
options, budget signature, device type and frozen-vs-fine-tuned upstream (older records that lack
the last two are grouped by what their environment says, or apart).

A condition has one run per (fold, seed): runs of one condition made by different serbench or
plugin versions are never pooled (the newest version's runs are kept and the table says so), and a
cell run twice keeps its newest run, also said.

Conditions are named ``method/upstream`` with their options in brackets,
``linear[normalize=speaker]/egemaps``; the same text selects them in ``compare`` and
``--baseline`` (``linear/egemaps[normalize=speaker]`` is accepted too). One quoting rule: a value
holding ``, [ ] / = "`` or a backslash, or blank at an end, is written in double quotes, with
``"`` and backslashes escaped by a backslash (``gmp_tl[k_values="50,100"]/wavlm_base``), so
every name a table shows can be passed back.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from serbench.judge.names import ConditionName, condition_name, format_options, natural
from serbench.judge.stats import Pooled, pool
from serbench.specs import ConfigError
from serbench.store import Store


@dataclass
class Condition:
    """One condition and its finished runs (index rows of the store)."""

    store: Store
    dataset: str
    protocol: str
    dataset_options: dict[str, Any]
    budget: str
    budget_signature: str
    upstream: str
    method: str
    options: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    failed: int = 0  # failed runs, not counted
    notes: list[str] = field(default_factory=list)  # runs left out, and why
    loaded: Pooled | None = field(default=None, repr=False)  # pooled predictions, once read

    @property
    def name(self) -> str:
        return condition_name(self.method, self.options, self.upstream)

    @property
    def folds(self) -> list[Any]:
        return sorted({r["fold"] for r in self.runs}, key=natural)

    @property
    def seeds(self) -> list[Any]:
        return sorted({r["seed"] for r in self.runs}, key=natural)

    def run_metric(self, metric: str) -> np.ndarray:
        return np.array([r[metric] for r in self.runs], dtype=float)

    def run_metric_by_cell(self, metric: str) -> dict[tuple[str, str], float]:
        """Per-run metric keyed by (fold, seed): what Wilcoxon pairs."""
        return {(str(r["fold"]), str(r["seed"])): float(r[metric]) for r in self.runs}

    @cached_property
    def test_id(self) -> str:
        """Hash of the per-fold test-set hashes: equal ids mean the same test utterances."""
        by_fold: dict[str, set[str]] = {}
        for r in self.runs:
            by_fold.setdefault(str(r["fold"]), set()).add(_cell_data(r))
        for fold, hashes in by_fold.items():
            if len(hashes) > 1:
                raise ConfigError(
                    f"{self.name} on {self.dataset}: the runs of fold {fold} were tested on "
                    f"different utterances (test hashes {', '.join(sorted(hashes))}); the dataset "
                    "changed between runs: delete the stale runs from the results folder")
        text = ";".join(f"{f}:{h.pop()}" for f, h in sorted(by_fold.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def test_hashes(self) -> dict[str, str]:
        """Per fold, the test set's hash and the data fingerprint: pairs must agree on both."""
        return {str(r["fold"]): _cell_data(r) for r in self.runs}

    @property
    def labels(self) -> tuple[str, ...]:
        if self.loaded is not None:
            return self.loaded.labels
        return tuple(self.store.read_record(self.runs[0]["run_id"])["labels"])

    @property
    def pooled(self) -> Pooled:
        """Every run's test predictions pooled per utterance (see :mod:`serbench.judge.stats`)."""
        if self.loaded is None:
            self.loaded = self._read_pooled()
        return self.loaded

    def _read_pooled(self) -> Pooled:
        parts = [run_predictions(self.store, r["run_id"], self.labels) for r in self.runs]
        if not parts or not sum(len(k) for k, *_ in parts):
            raise ConfigError(f"{self.name} on {self.dataset}: its runs stored no test predictions")
        keys, speakers, y_true, y_pred = (np.concatenate(col) for col in zip(*parts, strict=True))
        models = np.repeat(np.arange(len(parts)), [len(k) for k, *_ in parts])
        folds = [str(r["fold"]) for r in self.runs]
        fold_index = {f: i for i, f in enumerate(sorted(set(folds), key=natural))}
        return pool(keys, speakers, y_true, y_pred, self.labels, models,
                    [fold_index[f] for f in folds])

    def facts(self, key: str) -> list[Any]:
        """The distinct known values of a run fact (see :func:`run_facts`) over the runs."""
        return sorted({_hashable(r.get(key)) for r in self.runs} - {None}, key=repr)

    @property
    def tuned(self) -> tuple[str, ...]:
        """The options searched by its trials (empty with one trial), as the runs record them."""
        return tuple(sorted({x for v in self.facts("tuned") for x in v}))

    @property
    def transductive(self) -> bool:
        return any(self.facts("transductive"))

    @property
    def modality(self) -> str:
        parts = {m for v in self.facts("modality") for m in str(v).split("+")} or {"audio"}
        return "+".join(sorted(parts, key=lambda m: (m != "audio", m)))

    def run_json(self, run_id: str) -> Path:
        return self.store.runs_dir / run_id / "run.json"


def _cell_data(row: Mapping[str, Any]) -> str:
    """A run's test-set hash, with the fingerprint of the data it saw (labels, speakers, audio)."""
    data = row.get("data_hash")
    return f"{row['test_hash']}" + (f" (data {data})" if data else "")


CACHE = Path(".cache") / "predictions"


def run_predictions(
    store: Store, run_id: str, labels: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(keys, speakers, true index, predicted index) of one run's test predictions.

    ``predictions.jsonl`` is parsed and checked against its checksum once; the arrays are then
    kept in ``<results>/.cache/predictions/<run_id>.npz``, stamped with the record's checksum and
    the file's size and modification time, so a changed file is read (and checked) again. A
    results folder that cannot be written is simply read every time.
    """
    record = store.read_record(run_id)
    if tuple(record.get("labels") or ()) != tuple(labels):
        raise ConfigError(f"run {run_id} has labels {record.get('labels')} but the other runs of "
                          f"its condition have {list(labels)}: delete the stale run")
    source = store.runs_dir / run_id / "predictions.jsonl"
    try:
        st = source.stat()
    except FileNotFoundError:
        raise ConfigError(f"run {run_id} has no predictions.jsonl in {store.root}") from None
    stamp = f"{record.get('checksum')}:{st.st_size}:{st.st_mtime_ns}"
    cache = store.root / CACHE / f"{run_id}.npz"
    try:
        with np.load(cache, allow_pickle=False) as z:
            if str(z["stamp"]) == stamp:
                return z["keys"], z["speakers"], z["y_true"], z["y_pred"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        pass  # missing or damaged: a derived file, rebuilt below
    preds = store.read_predictions(run_id)
    index = {label: i for i, label in enumerate(labels)}
    try:
        y_true = np.array([index[p["label"]] for p in preds], dtype=np.int64)
        y_pred = np.array([index[p["prediction"]] for p in preds], dtype=np.int64)
    except KeyError as exc:
        raise ConfigError(f"run {run_id}: predictions.jsonl names class {exc.args[0]!r}, which is "
                          f"not among the run's labels ({', '.join(labels)})") from None
    keys = np.array([p["key"] for p in preds], dtype=str)
    speakers = np.array([str(p["speaker"]) for p in preds], dtype=str)
    _save(cache, stamp=np.array(stamp), keys=keys, speakers=speakers, y_true=y_true, y_pred=y_pred)
    return keys, speakers, y_true, y_pred


def _save(path: Path, **arrays: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only results folder: no cache


@dataclass
class Table:
    """Conditions ranked together: one dataset, protocol, dataset options, budget signature,
    device type and frozen-vs-fine-tuned upstream."""

    dataset: str
    protocol: str
    dataset_options: dict[str, Any]
    budget: str
    budget_signature: str
    conditions: list[Condition]
    device_type: str | None = None
    frozen_upstream: bool | None = None

    @property
    def title(self) -> str:
        setup = "".join(f" · {x}" for x in self.setup())
        return (f"{self.dataset}{format_options(self.dataset_options)} / {self.protocol} · "
                f"budget {self.budget}{setup}")

    def setup(self) -> list[str]:
        """What the budget signature does not say: device, frozen or fine-tuned, smoke test."""
        out = [f"{self.device_type}"] if self.device_type else []
        if self.frozen_upstream is not None:
            out.append("frozen upstream" if self.frozen_upstream else "fine-tuned upstream")
        if "smoke" in self.budget.split("+"):
            out.append("SMOKE TEST (a few steps: not a result)")
        return out

    @property
    def seeds(self) -> list[Any]:
        return sorted({s for c in self.conditions for s in c.seeds}, key=natural)

    @property
    def folds(self) -> list[Any]:
        return sorted({f for c in self.conditions for f in c.folds}, key=natural)


def load_tables(
    store: Store, dataset: str | None = None, budget: str | None = None
) -> list[Table]:
    """The finished runs of ``store`` grouped into tables of conditions (a clear error if none).

    Failed runs are not counted; each condition remembers how many it has (``failed``).
    """
    everything = store.query()
    for r in everything:
        r.update(run_facts(store.read_record(r["run_id"])))
    rows = [r for r in everything if r["status"] == "ok"]
    failed: dict[tuple, int] = {}
    for r in everything:
        if r["status"] != "ok":
            key = _condition_key(r)
            failed[key] = failed.get(key, 0) + 1
    if not rows:
        raise ConfigError(f"no finished runs in {store.root}: run `serbench run ...` first "
                          "or point --results at another folder")
    for what, value in (("dataset", dataset), ("budget", budget)):
        if value is not None:
            known = sorted({str(r[what]) for r in rows})
            rows = [r for r in rows if r[what] == value]
            if not rows:
                raise ConfigError(f"no finished runs with {what} {value!r} in {store.root} "
                                  f"(there: {', '.join(known)})")
    tables: dict[tuple, dict[tuple, Condition]] = {}
    for r in rows:
        key = _condition_key(r)
        conds = tables.setdefault(key[:6], {})
        if key not in conds:
            conds[key] = Condition(store, r["dataset"], r["protocol"], r["dataset_options"],
                                   r["budget"], r["budget_signature"], r["upstream"], r["method"],
                                   r["options"], failed=failed.get(key, 0))
        conds[key].runs.append(r)
    out = []
    for (ds, proto, _, sig, device, frozen), conds in tables.items():
        for cond in conds.values():
            one_cell_each(cond)
        first = next(iter(conds.values()))
        names = sorted({r["budget"] for c in conds.values() for r in c.runs})
        out.append(Table(ds, proto, first.dataset_options, "+".join(names), sig,
                         sorted(conds.values(), key=lambda c: c.name), device, frozen))
    return sorted(out, key=lambda t: (t.dataset, t.protocol, t.title, t.budget_signature))


def run_facts(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a table needs from ``run.json`` beyond the index, with fallbacks for older records:
    versions, device type, frozen upstream, tuned options, transductive, modality, steps."""
    env = record.get("environment") or {}
    budget = record.get("budget") or {}
    usage = record.get("usage") or {}
    options = (record.get("spec") or {}).get("options") or {}
    device = budget.get("device_type") or str(env.get("device") or "").split(":")[0] or None
    tuned = record.get("tuned")
    if tuned is None:  # older records: the options whose value changed between trials
        trials = [t.get("options") or {} for t in usage.get("trials") or []]
        tuned = [k for k in sorted({k for t in trials for k in t})
                 if len({repr(t.get(k)) for t in trials}) > 1]
    versions = {"serbench": env.get("serbench", "?"),
                **{f"plugin {k}": v for k, v in (env.get("plugins") or {}).items()}}
    return {"versions": tuple(sorted(versions.items())), "device_type": device,
            "frozen_upstream": budget.get("frozen_upstream"), "tuned": tuple(tuned),
            "transductive": bool(record.get("transductive",
                                            options.get("normalize") == "speaker")),
            "modality": record.get("modality") or "audio",
            "steps": usage.get("steps"), "stopped_by": usage.get("stopped_by") or None}


def one_cell_each(cond: Condition) -> None:
    """Keep one version's runs (the newest) and one run per (fold, seed); say what was left out."""
    # a plugin installed or removed between runs did not make the runs that lack it
    shared = set.intersection(*({k for k, _ in r["versions"]} for r in cond.runs))
    by_version: dict[tuple, list[dict[str, Any]]] = {}
    for r in cond.runs:
        by_version.setdefault(tuple(x for x in r["versions"] if x[0] in shared), []).append(r)
    if len(by_version) > 1:
        newest = max(by_version, key=lambda v: max(str(r["created"]) for r in by_version[v]))
        differ = {k for v in by_version for k, x in v if dict(newest)[k] != x}

        def text(v: tuple) -> str:
            d = dict(v)
            return ", ".join(f"{k} {d[k]}" for k in sorted(differ))

        old = [v for v in by_version if v != newest]
        left = sum(len(by_version[v]) for v in old)
        cond.notes.append(
            f"{cond.name}: its runs come from different versions; kept the "
            f"{len(by_version[newest])} run(s) of {text(newest)}, left out {left} of "
            f"{'; '.join(text(v) for v in old)} (never pooled); to keep other ones, delete the "
            "run folders you do not want or move them to another --results folder.")
        cond.runs = by_version[newest]
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for r in sorted(cond.runs, key=lambda r: str(r["created"])):
        cells[(str(r["fold"]), str(r["seed"]))] = r
    if len(cells) < len(cond.runs):
        budgets = sorted({r["budget"] for r in cond.runs})
        cond.notes.append(
            f"{cond.name}: {len(cond.runs) - len(cells)} (fold, seed) cell(s) were run more than "
            f"once (budget names {', '.join(budgets)} share one signature); kept the newest run "
            "of each.")
        cond.runs = sorted(cells.values(), key=lambda r: (natural(r["fold"]), natural(r["seed"])))


def find_condition(
    tables: Sequence[Table], text: str, what: str = "condition"
) -> list[tuple[Table, Condition]]:
    """Every (table, condition) the text names; a clear error with the known names if none."""
    wanted = ConditionName.parse(text, what)
    hits = [(t, c) for t in tables for c in t.conditions if wanted.matches(c)]
    if not hits:
        import difflib

        names = sorted({c.name for t in tables for c in t.conditions})
        same = sorted({c.name for t in tables for c in t.conditions
                       if (c.method, c.upstream) == (wanted.method, wanted.upstream)
                       or (c.method, c.upstream) == (wanted.upstream, wanted.method)})
        close = same or difflib.get_close_matches(str(wanted), names, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"{what} {text!r} has no finished runs here; {hint}"
                          f"conditions: {', '.join(names)}")
    return hits


def _condition_key(r: Mapping[str, Any]) -> tuple:
    return (r["dataset"], r["protocol"], _freeze(r["dataset_options"]), r["budget_signature"],
            r.get("device_type"), r.get("frozen_upstream"), r["upstream"], r["method"],
            _freeze(r["options"]))


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _freeze(options: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in options.items()))
