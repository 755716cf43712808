"""Plan a sweep (methods × upstreams × folds × seeds): validate everything that can be known
before compute (names, options, budget, the data and its folds, what each method requires of the
data), give each run its id, and mark the runs the store already holds."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from serbench import __version__
from serbench.data.view import DatasetView, load_dataset
from serbench.options import HarnessOptions, method_options, seed_list
from serbench.registry import Components
from serbench.run.budgets import resolve_budget
from serbench.specs import (
    GENDERS,
    Budget,
    ConfigError,
    MethodSpec,
    RunSpec,
    UpstreamSpec,
)
from serbench.store import Store


@dataclass
class Cell:
    """One (method, upstream) cell with its validated options."""

    method: MethodSpec
    upstream: UpstreamSpec
    options: dict[str, Any]  # every option, defaults included
    changed: dict[str, Any]  # only those set away from the defaults

    @property
    def frozen(self) -> bool:
        """Whether runs read the upstream's cached features (it is not fine-tuned)."""
        return not self.method.finetunes(self.options)

    def layers_read(self) -> tuple[int, ...]:
        return self.method.layers_read(self.options, self.upstream.num_layers)

    def frames_read(self) -> tuple[int, ...] | None:
        """The layers whose frames runs read from the cache (MethodSpec.frames_read)."""
        return self.method.frames_read(self.options, self.upstream.num_layers)


@dataclass
class PlannedRun:
    spec: RunSpec
    run_id: str
    condition: Cell
    done: bool = False
    data_hash: str = ""  # the fold's data fingerprint (manifests.fold_fingerprints)


@dataclass
class Plan:
    runs: list[PlannedRun]
    dataset: DatasetView
    budget: Budget
    components: Components
    skip_bad_audio: bool = False
    # make_plan's keyword arguments (picklable): worker processes rebuild the same plan from them
    request: dict[str, Any] = field(default_factory=dict)
    references: list[dict[str, Any]] = field(default_factory=list)  # published, from a suite

    def todo(self) -> list[PlannedRun]:
        return [r for r in self.runs if not r.done]

    def frame_layers(self, upstream: str) -> tuple[int, ...] | None:
        """The layers of ``upstream`` whose frames the plan's runs still to do read, all at once:
        what one fill stores (``()``: pooled statistics only; None: every layer)."""
        reads = [r.condition.frames_read() for r in self.todo()
                 if r.condition.upstream.name == upstream]
        if any(read is None for read in reads):
            return None
        return tuple(sorted({k for read in reads if read is not None for k in read}))


def check_requirements(cond: Cell, data: DatasetView, components: Components) -> None:
    """Everything a method needs of the data and the upstream, before any compute."""
    m, u, opts = cond.method, cond.upstream, cond.options
    where = f"method {m.name!r} on dataset {data.spec.name!r}"
    if u.modality != "audio":
        raise ConfigError(f"{u.name!r} is a text encoder; choose an audio upstream with --upstream")
    if "gender" in m.requires and not all(x.gender in GENDERS for x in data.utterances):
        missing = sum(x.gender not in GENDERS for x in data.utterances)
        raise ConfigError(f"{where}: the method needs speaker gender, which {missing} "
                          "utterances lack; choose a dataset with gender")
    if "text" in m.requires and not all(x.text for x in data.utterances):
        raise ConfigError(f"{where}: the method needs transcripts, which this dataset lacks")
    if "frames" in m.requires and not u.frame_rate:
        raise ConfigError(f"method {m.name!r} needs frame-level features, but upstream {u.name!r} "
                          "gives one vector per utterance; choose a frame-level upstream")
    finetune = m.finetunes(opts)
    if finetune and not u.trainable:
        raise ConfigError(f"method {m.name!r} fine-tunes its upstream, but {u.name!r} has no "
                          "trainable weights; use --option finetune_upstream=false or another "
                          "upstream")
    if finetune and cond.changed.get("normalize", "none") != "none":
        raise ConfigError(f"method {m.name!r}: normalize={opts['normalize']} applies to frozen "
                          "features only; use finetune_upstream=false or normalize=none")
    harness = HarnessOptions.read(m.name, opts)
    if harness.text_encoder is not None:
        text_encoder(components, harness.text_encoder)


def text_encoder(components: Components, name: str) -> UpstreamSpec:
    """The text upstream named by a method's ``text_encoder`` option (or asked for by its build)."""
    spec = components.upstreams.get(name)
    if spec.modality != "text":
        raise ConfigError(f"text_encoder {spec.name!r} is an audio upstream; choose a text "
                          "encoder (serbench list upstreams)")
    return spec


def _versions(components: Components, cond: Cell, dataset: str) -> dict[str, str]:
    out = {"serbench": __version__}
    for kind, name in (("methods", cond.method.name), ("upstreams", cond.upstream.name),
                       ("datasets", dataset)):
        reg = components.registry(kind)
        plugin = reg.origin.get(name) or reg.origin.get(name.split(":", 1)[0] + ":", "")
        info = components.plugins.infos.get(plugin)
        out[f"plugin:{plugin}"] = info.version if info else "?"
    return out


def run_id_for(spec: RunSpec, budget: Budget, versions: Mapping[str, str],
               options: Mapping[str, Any] | None = None, data_hash: str = "") -> str:
    """A hash of the spec, the budget, the code versions, every option the run will use
    (``options``, defaults included: a changed default is another run, not a stored one) and the
    fingerprint of the data the run sees (relabelled data is another run)."""
    body = {"spec": spec.as_dict(), "budget": budget.signature(),
            "versions": dict(sorted(versions.items())), "data": data_hash}
    if options is not None:
        body["options"] = dict(sorted(options.items()))
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


def natural_budget(conditions: Sequence[Cell]) -> Budget:
    """``probe`` when every method trains on frozen features, ``finetune`` when every one
    fine-tunes its upstream; a sweep mixing both must name the budget its comparison uses."""
    kinds = {c.method.finetunes(c.options) for c in conditions}
    if len(kinds) > 1:
        finetuned = sorted({c.method.name for c in conditions if c.method.finetunes(c.options)})
        frozen = sorted({c.method.name for c in conditions if not c.method.finetunes(c.options)})
        raise ConfigError(f"{', '.join(finetuned)} fine-tune their upstream (natural budget "
                          f"finetune) and {', '.join(frozen)} train on frozen features (natural "
                          "budget probe); one comparison runs under one budget: pass --budget "
                          "probe, finetune or smoke")
    return resolve_budget("finetune" if kinds == {True} else "probe")


def run_options(method: MethodSpec, full: dict[str, Any],
                   changed: Mapping[str, Any]) -> dict[str, Any]:
    """The options a run uses: ``normalize`` (training-set statistics by default) applies to
    frozen features only, so a fine-tuned upstream left at the default reads ``none``."""
    if method.finetunes(full) and "normalize" in full and "normalize" not in changed:
        return {**full, "normalize": "none"}
    return full


def select_folds(data: DatasetView, wanted: Sequence[str] | None) -> list[str]:
    names = list(data.folds)
    if not wanted:
        return names
    out = []
    for w in wanted:
        if w in data.folds:
            out.append(w)
        elif w.isdigit() and 0 <= int(w) < len(names):  # an index into the fold list
            out.append(names[int(w)])
        else:
            raise ConfigError(f"dataset {data.spec.name!r} protocol {data.protocol!r} has no fold "
                              f"{w!r}; folds: {', '.join(names)} (or indices 0-{len(names) - 1})")
    return out


def cells(components: Components, methods: Sequence[str], upstreams: Sequence[str],
          options: Mapping[str, Any]) -> list[Cell]:
    """Every (method, upstream) cell with the method's validated options."""
    out = []
    for m_name in methods:
        m = components.methods.get(m_name)
        full, changed = method_options(m.name, m.defaults, options)
        full = run_options(m, full, changed)
        for u_name in upstreams:
            out.append(Cell(m, components.upstreams.get(u_name), full, changed))
    return out


def _cell_runs(components: Components, cond: Cell, data: DatasetView, budget: Budget,
               fold_names: Sequence[str], seeds: Sequence[int], prints: Mapping[str, str],
               store: Store | None) -> list[PlannedRun]:
    """One cell's runs, fold by fold and seed by seed, each with its id."""
    versions = _versions(components, cond, data.spec.name)
    runs = []
    for fold in fold_names:
        for seed in seeds:
            spec = RunSpec(
                upstream=cond.upstream.name, method=cond.method.name,
                dataset=data.spec.name, protocol=data.protocol, fold=fold, seed=int(seed),
                budget=budget.name, options=cond.changed,
                dataset_options={k: v for k, v in data.options.items()
                                 if v != data.spec.options.get(k)},
            )
            rid = run_id_for(spec, budget, versions, cond.options, prints[fold])
            runs.append(PlannedRun(spec, rid, cond, bool(store and store.has(rid)),
                                   prints[fold]))
    return runs


def make_plan(
    components: Components,
    *,
    methods: Sequence[str],
    upstreams: Sequence[str],
    dataset: str,
    data_root: str | Path | None = None,
    protocol: str | None = None,
    budget: Budget | str | None = None,
    seeds: int | Sequence[int] = 1,
    folds: Sequence[str] | None = None,
    options: Mapping[str, Any] | None = None,
    dataset_options: Mapping[str, str] | None = None,
    store: Store | None = None,
    skip_bad_audio: bool = False,
    data: DatasetView | None = None,
    references: Sequence[Mapping[str, Any]] = (),
    test_dataset: str | None = None,
    test_dataset_options: Mapping[str, str] | None = None,
    test_data_root: str | Path | None = None,
    cross_labels: Sequence[str] | None = None,
) -> Plan:
    """Validate a sweep and list its runs, marking those the store already holds.

    ``budget=None`` is the methods' natural budget (:func:`natural_budget`); ``references``
    (published numbers, see serbench.judge.references) go into each run's record.
    """
    request = dict(methods=list(methods), upstreams=list(upstreams), dataset=dataset,
                   data_root=data_root, protocol=protocol, budget=budget, seeds=seeds,
                   folds=folds, options=dict(options or {}),
                   dataset_options=dict(dataset_options or {}), skip_bad_audio=skip_bad_audio,
                   references=[dict(r) for r in references], test_dataset=test_dataset,
                   test_dataset_options=dict(test_dataset_options or {}),
                   test_data_root=test_data_root,
                   cross_labels=list(cross_labels) if cross_labels else None)
    seeds = seed_list(seeds, "--seeds")
    conditions = cells(components, methods, upstreams, options or {})
    if budget is None:
        budget = natural_budget(conditions)
    elif isinstance(budget, str):
        budget = resolve_budget(budget)
    data = data or load_dataset(components, dataset, data_root, protocol, dataset_options or {},
                                skip_bad_audio)
    if test_dataset:  # cross-corpus: train on all of `dataset`, test on all of `test_dataset`
        from serbench.data.crosscorpus import DEFAULT_LABELS, load_cross

        data = load_cross(components, data, test_dataset, test_data_root or data_root,
                          test_dataset_options or {}, cross_labels or DEFAULT_LABELS,
                          skip_bad_audio)
    for cond in conditions:
        check_requirements(cond, data, components)
    fold_names = select_folds(data, folds)
    from serbench.data.manifests import fold_fingerprints

    prints = fold_fingerprints(data.root, data.utterances, [data.folds[f] for f in fold_names])
    runs = [run for cond in conditions
            for run in _cell_runs(components, cond, data, budget, fold_names, seeds, prints, store)]
    return Plan(runs, data, budget, components, skip_bad_audio, request,
                [dict(r) for r in references])
