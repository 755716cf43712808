"""Plan runs (methods × upstreams × folds × seeds), execute them, skip what is done.

Planning validates everything that can be known before compute: names, options, budget, the
data and its folds, and what each method requires of the data. A run that fails is stored as
failed with its error and the others go on; bad audio stops the sweep (it would fail every run)
unless ``skip_bad_audio`` is set.
"""

from __future__ import annotations

import hashlib
import json
import platform
import random
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from serbench import __version__
from serbench.options import method_options, seed_list
from serbench.registry import Components
from serbench.run.budgets import resolve_budget
from serbench.specs import (
    GENDERS,
    Budget,
    BuildContext,
    ConfigError,
    DatasetSpec,
    Fold,
    MethodSpec,
    RunSpec,
    UpstreamSpec,
    Utterance,
)
from serbench.store import SCHEMA, Store, test_set_hash


@dataclass
class DatasetView:
    """A dataset as one sweep sees it: resolved root, options, utterances and checked folds."""

    spec: DatasetSpec
    root: Path
    options: dict[str, Any]
    protocol: str
    utterances: list[Utterance]
    folds: dict[str, Fold]
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def labels(self) -> tuple[str, ...]:
        present = {u.label for u in self.utterances}
        ordered = [lab for lab in self.spec.labels if lab in present]
        return tuple(ordered + sorted(present - set(ordered)))


@dataclass
class Condition:
    """One (method, upstream) cell with its validated options."""

    method: MethodSpec
    upstream: UpstreamSpec
    options: dict[str, Any]  # every option, defaults included
    changed: dict[str, Any]  # only those set away from the defaults


@dataclass
class PlannedRun:
    spec: RunSpec
    run_id: str
    condition: Condition
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


# ---------------------------------------------------------------------------------- planning


def load_dataset(
    components: Components,
    name: str,
    data_root: str | Path | None,
    protocol: str | None,
    raw_options: Mapping[str, str],
    skip_bad_audio: bool = False,
    with_folds: bool = True,
) -> DatasetView:
    """A corpus and its protocol's folds (``with_folds=False``: its utterances only)."""
    from serbench.data.manifests import dataset_options, load_folds, load_utterances, resolve_root

    spec = components.datasets.get(name)
    options = dataset_options(spec, raw_options)
    root = resolve_root(spec, data_root, components.plugins)
    skipped: list[dict[str, str]] = []

    def on_bad(err: Any) -> None:
        skipped.append({"path": err.path, "reason": err.problem})
        print(f"serbench: warning: skipping {err}", file=sys.stderr)

    handler = on_bad if skip_bad_audio else None
    utterances = load_utterances(spec, root, options, on_bad_audio=handler)
    if not with_folds:
        return DatasetView(spec, root, options, "", utterances, {}, skipped)
    protocol = protocol or spec.default_protocol
    folds = load_folds(spec, utterances, protocol, options)
    return DatasetView(spec, root, options, protocol, utterances, {f.name: f for f in folds},
                       skipped)


def check_requirements(cond: Condition, data: DatasetView, components: Components) -> None:
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
    if opts.get("normalize", "none") not in ("none", "global", "speaker"):
        raise ConfigError(f"method {m.name!r}: normalize must be none, global or speaker, "
                          f"got {opts['normalize']!r}")
    if "text_encoder" in opts:
        text = components.upstreams.get(str(opts["text_encoder"]))
        if text.modality != "text":
            raise ConfigError(f"text_encoder {text.name!r} is an audio upstream; choose a text "
                              "encoder (serbench list upstreams)")


def _versions(components: Components, cond: Condition, dataset: str) -> dict[str, str]:
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


def natural_budget(conditions: Sequence[Condition]) -> Budget:
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
    conditions = []
    for m_name in methods:
        m = components.methods.get(m_name)
        full, changed = method_options(m.name, m.defaults, options or {})
        full = run_options(m, full, changed)
        for u_name in upstreams:
            conditions.append(Condition(m, components.upstreams.get(u_name), full, changed))
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
    runs = []
    for cond in conditions:
        versions = _versions(components, cond, data.spec.name)
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
    return Plan(runs, data, budget, components, skip_bad_audio, request,
                [dict(r) for r in references])


# ---------------------------------------------------------------------------------- execution


def resolve_device(name: str | None) -> Any:
    import torch

    name = name or "auto"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but no CUDA device is available here; "
                          "use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}: use auto, cpu or cuda[:N]") from None


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    # torch.use_deterministic_algorithms(True, warn_only=True) without the compiler import it
    # also does (about 2 s per process; serbench does not compile)
    torch.set_deterministic_debug_mode("warn")


def seed_record(seed: int) -> dict[str, Any]:
    """What seed_everything set, for run.json: the same record means the same random streams."""
    import torch

    return {"python": seed, "numpy": seed % 2**32, "torch": seed,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "torch_threads": torch.get_num_threads()}


def environment(device: Any, components: Components) -> dict[str, Any]:
    import importlib.metadata as md

    def version(dist: str) -> str | None:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return None

    return {
        "serbench": __version__,
        "python": platform.python_version(),
        "torch": version("torch"),
        "transformers": version("transformers"),
        "numpy": version("numpy"),
        "platform": platform.platform(),
        "device": str(device),
        "plugins": {n: i.version for n, i in components.plugins.infos.items()},
    }


def _sample_trial(search: Mapping[str, Sequence[Any]], keep: Mapping[str, Any], seed: int,
                  trial: int) -> dict[str, Any]:
    if trial == 0:
        return {}
    rng = random.Random(seed * 7919 + trial)
    return {k: rng.choice(list(v)) for k, v in search.items() if k not in keep}


def execute_run(plan: Plan, run: PlannedRun, device: Any, quiet: bool = True,
                progress: Callable[[str], None] | None = None) -> tuple[
    dict[str, Any], list[dict[str, Any]]
]:
    """Train and test one run; returns its record and predictions (nothing is stored here).

    Under torchrun every rank calls this with the same run: the model is wrapped for
    DistributedDataParallel and device seconds are summed over ranks (serbench.run.distributed).
    """
    import numpy as np

    from serbench.contracts import method_model
    from serbench.data.feeds import AudioFeed, CachedFeed
    from serbench.judge.metrics import compute_metrics
    from serbench.run.distributed import current_world
    from serbench.run.training import measured, predict, train

    started = time.time()
    spec, cond, data, budget = run.spec, run.condition, plan.dataset, plan.budget
    seed_everything(spec.seed)
    labels = data.labels
    label_index = {lab: i for i, lab in enumerate(labels)}
    by_key = {u.key: u for u in data.utterances}
    fold = data.folds[spec.fold]
    splits = {s: [by_key[k] for k in getattr(fold, s) if k in by_key]
              for s in ("train", "dev", "test")}
    finetune = cond.method.finetunes(cond.options)
    skipped = list(data.skipped)
    revision = cond.upstream.revision
    t0 = time.perf_counter()
    if finetune:
        waves, skipped_here = _decode(data, [u for s in splits.values() for u in s],
                                      cond.upstream.sample_rate, plan.skip_bad_audio)
        skipped += skipped_here
        splits = {s: [u for u in us if u.key in waves] for s, us in splits.items()}

        def make_feed() -> Any:
            return AudioFeed(waves, splits, label_index, budget.batch_seconds)
    else:
        from serbench.data.features import cached_features

        joint = getattr(data, "features", None)  # a cross-corpus view joins two entries
        entry = joint(
            cond.upstream, device, skip_bad_audio=plan.skip_bad_audio,
            need_frames=cond.method.inputs == "frames", quiet=quiet,
        ) if joint else cached_features(
            cond.upstream, data.spec.name, data.root, data.utterances, device,
            skip_bad_audio=plan.skip_bad_audio, need_frames=cond.method.inputs == "frames",
            quiet=quiet,
        )
        revision = entry.revision
        skipped += [s for s in entry.skipped if s not in skipped]
        splits = {s: [u for u in us if u.key in entry.rows] for s, us in splits.items()}

        def make_feed() -> Any:
            return CachedFeed(entry, splits, label_index, budget.batch_seconds,
                              pooled=cond.method.inputs == "pooled",
                              normalize=str(cond.options.get("normalize", "none")))
    feature_seconds = time.perf_counter() - t0
    for s in ("train", "test"):
        if not splits[s]:
            raise ConfigError(f"fold {spec.fold} has no usable {s} utterances")
    if not splits["dev"]:
        raise ConfigError(f"fold {spec.fold} has no dev utterances: the protocol must give dev")
    feed = make_feed()

    # the trial search varies the declared options the user did not fix
    free = sorted(k for k in cond.method.search_space if k not in cond.changed)
    n_trials = budget.max_trials if free else 1
    world = current_world()
    share = world.total_seconds if world else None
    trial_budget = budget if n_trials == 1 else replace(
        budget, max_steps=max(1, budget.max_steps // n_trials),
        max_device_seconds=budget.max_device_seconds / n_trials)
    best = None
    trials = []
    for trial in range(n_trials):
        options = {**cond.options,
                   **_sample_trial(cond.method.search_space, cond.changed, spec.seed, trial)}
        seed_everything(spec.seed)
        ctx = BuildContext(
            labels=labels, options=options, upstream=cond.upstream, dataset=data.spec,
            device=device, seed=spec.seed, finetune_upstream=finetune,
            load_upstream=lambda: cond.upstream.loader(device),
            text_encoder=lambda name: _text_encoder(plan.components, name),
            stages=cond.method.stages,
        )
        with measured(device, share) as built:  # CLAP encodes its prompts here: metered
            model = method_model(cond.method.name, cond.method.build(ctx)).to(device)
        usage = train(world.wrap(model) if world else model, feed, trial_budget,
                      getattr(model, "stages", cond.method.stages),
                      float(options.get("lr", 1e-3)), device, spec.seed,
                      labels, progress=progress, share_seconds=share, spent=built.used,
                      closing_items=len(splits["dev"]) + len(splits["test"]))
        trials.append({"options": options, "best_dev_uar": usage.best_dev_uar,
                       "usage": usage.as_dict()})
        if best is None or (usage.best_dev_uar or 0) > (best[1].best_dev_uar or 0):
            best = (model, usage, options)
        else:
            del model
    model, usage, options = best
    with measured(device, share) as tested:
        keys, y, scores = predict(model, feed.evaluate("test"), device, budget)
    usage.predict_seconds = tested.used
    usage.device_seconds += tested.used
    pred = scores.argmax(1) if len(keys) else np.zeros(0, dtype=int)
    metrics = compute_metrics(y, pred.tolist(), labels)
    predictions = [
        {"key": k, "speaker": by_key[k].speaker, "label": labels[t], "prediction": labels[int(p)],
         "scores": [round(float(v), 6) for v in s]}
        for k, t, p, s in zip(keys, y, pred, scores, strict=True)
    ]
    usage_dict = usage.as_dict()
    if n_trials > 1:
        usage_dict["trials"] = trials
    record = {
        "schema": SCHEMA,
        "run_id": run.run_id,
        "status": "ok",
        "error": None,
        "spec": spec.as_dict(),
        "seeds": seed_record(spec.seed),
        "options": options,
        "budget": budget_record(budget, device, frozen=not finetune),
        "usage": usage_dict,
        "tuned": free if n_trials > 1 else [],
        "modality": modality(cond.method),
        "transductive": not finetune and options.get("normalize") == "speaker",
        "metrics": metrics,
        "labels": list(labels),
        "test_hash": test_set_hash(keys),
        "data_hash": run.data_hash,
        "n_train": len(splits["train"]),
        "n_dev": len(splits["dev"]),
        "n_test": len(splits["test"]),
        "skipped_audio": skipped,
        "upstream_revision": revision,
        # what the method reports of its own fit (e.g. GMP-TL's k-means): a JSON-able dict
        "method_info": dict(getattr(model, "run_info", None) or {}),
        "feature_seconds": round(feature_seconds, 3),
        "environment": environment(device, plan.components),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "duration_seconds": round(time.time() - started, 3),
        "references": references_for_run(plan, run),
        "cross_corpus": getattr(data, "cross", None),
    }
    return record, predictions


def references_for_run(plan: Plan, run: PlannedRun) -> list[dict[str, Any]]:
    """The plan's published references that concern this run's condition."""
    from serbench.judge.references import Reference, for_condition

    return for_condition([Reference.from_dict(r) for r in plan.references], run.spec.method,
                         run.spec.upstream, run.condition.options)


def prepare_features(plan: Plan, runs: Sequence[PlannedRun], device: Any,
                     quiet: bool = False) -> None:
    """Fill the feature cache entries that ``runs`` on frozen upstreams will read, here.

    ``--workers N`` calls this in the driver first: one process fills each entry on every core
    while the workers would otherwise wait on its lock, and forked workers were measured to
    run the same forward pass 10-20 % slower than the process that started them. A fill that
    fails is left to the runs, which record the error; bad audio stops the sweep as it would
    there.
    """
    from serbench.data.audio import AudioError
    from serbench.data.features import cached_features

    done: set[str] = set()
    for run in runs:
        cond = run.condition
        if cond.method.finetunes(cond.options) or cond.upstream.name in done:
            continue
        done.add(cond.upstream.name)
        try:
            cached_features(cond.upstream, plan.dataset.spec.name, plan.dataset.root,
                            plan.dataset.utterances, device, skip_bad_audio=plan.skip_bad_audio,
                            need_frames=False, quiet=quiet)
        except AudioError:
            raise
        except Exception:  # each run meets it again and records it
            continue


def budget_record(budget: Budget, device: Any, frozen: bool) -> dict[str, Any]:
    """The budget as a run records it: its limits, the device type, whether the upstream was
    frozen (cached features) or fine-tuned, and a signature over all of them."""
    from dataclasses import asdict

    context = {"device_type": getattr(device, "type", str(device).split(":")[0]),
               "frozen_upstream": frozen}
    return {**asdict(budget), **context, "signature": budget.signature(**context)}


def modality(method: MethodSpec) -> str:
    """``audio+text`` for a method that reads transcripts, else ``audio``."""
    return "audio+text" if "text" in method.requires else "audio"


def _text_encoder(components: Components, name: str) -> UpstreamSpec:
    spec = components.upstreams.get(name)
    if spec.modality != "text":
        raise ConfigError(f"{name!r} is not a text encoder")
    return spec


def _decode(data: DatasetView, utts: Sequence[Utterance], sample_rate: int,
            skip_bad: bool) -> tuple[dict[str, Any], list[dict[str, str]]]:
    from serbench.data.audio import AudioError, load_audio
    from serbench.data.manifests import audio_path

    waves, skipped = {}, []
    for u in utts:
        try:
            waves[u.key] = load_audio(audio_path(data.root, u), sample_rate)
        except AudioError as exc:
            if not skip_bad:
                raise
            skipped.append({"path": exc.path, "reason": exc.problem})
    return waves, skipped


def failed_record(plan: Plan, run: PlannedRun, error: str, device: Any) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "run_id": run.run_id,
        "status": "failed",
        "error": error,
        "spec": run.spec.as_dict(),
        "data_hash": run.data_hash,
        "options": run.condition.options,
        "budget": budget_record(plan.budget, device,
                                frozen=not run.condition.method.finetunes(run.condition.options)),
        "usage": None,
        "modality": modality(run.condition.method),
        "metrics": None,
        "environment": environment(device, plan.components),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def outcome(run: PlannedRun, record: Mapping[str, Any] | None, status: str) -> dict[str, Any]:
    """The ``--json`` line of one run."""
    metrics = (record or {}).get("metrics") or {}
    s = run.spec
    return {
        "run_id": run.run_id, "status": status, "upstream": s.upstream, "method": s.method,
        "dataset": s.dataset, "protocol": s.protocol, "fold": s.fold, "seed": s.seed,
        "budget": s.budget, "options": dict(s.options),
        "metrics": {k: metrics.get(k) for k in ("uar", "war", "macro_f1")} if metrics else None,
        "error": (record or {}).get("error"),
    }


def run_plan(
    plan: Plan,
    store: Store,
    *,
    device: str | None = None,
    quiet: bool = False,
    report: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Execute every run not yet stored; store each as it finishes. Returns the outcomes."""
    from serbench.cli.app import error_line
    from serbench.data.audio import AudioError

    dev = resolve_device(device or plan.budget.device)
    store.ensure()
    outcomes = []
    for run in plan.runs:
        if run.done or store.has(run.run_id):
            rec = store.read_record(run.run_id)
            out = outcome(run, rec, "skipped")
        else:
            try:
                record, predictions = execute_run(plan, run, dev, quiet=quiet)
            except (AudioError, KeyboardInterrupt):
                raise  # bad data fails every run: stop the sweep, nothing stored is touched
            except Exception as exc:  # this run failed; record it and go on
                record, predictions = failed_record(plan, run, error_line(exc), dev), []
            store.write(record, predictions)
            _notify(plan, record)
            out = outcome(run, record, record["status"])
        outcomes.append(out)
        if report:
            report(out)
    return outcomes


def _notify(plan: Plan, record: Mapping[str, Any]) -> None:
    from serbench.plugins import notify_run_finished

    notify_run_finished(plan.components.plugins, record)
