"""Execute one planned run: its data, its trial search under the budget, its test predictions
and its record. Nothing is stored here (serbench.run.attempt stores, and decides what a failure
stops); planning is serbench.run.planning.

Under torchrun every rank calls :func:`execute_run` with the same run and the ``world`` it joined:
the model is wrapped for DistributedDataParallel and device seconds are summed over ranks.
"""

from __future__ import annotations

import platform
import random
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

from serbench import __version__
from serbench.data.view import DatasetView
from serbench.options import HarnessOptions
from serbench.registry import Components
from serbench.run.planning import Plan, PlannedRun, text_encoder
from serbench.run.record import RunRecord
from serbench.specs import Budget, BuildContext, ConfigError, MethodSpec, Utterance
from serbench.store import test_set_hash

Progress = Callable[[str], None]


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


@dataclass
class Inputs:
    """What one run trains and tests on: its splits, how to make its feed, what was skipped."""

    splits: dict[str, list[Utterance]]
    make_feed: Callable[[], Any]
    skipped: list[dict[str, str]]
    revision: str | None
    seconds: float  # spent decoding audio or reading (filling) the feature cache


@dataclass
class Fit:
    """The best trial of a run's search, and every trial when there was a search."""

    model: Any
    usage: Any
    options: dict[str, Any]
    trials: list[dict[str, Any]]
    tuned: list[str]


def fold_splits(data: DatasetView, fold_name: str) -> dict[str, list[Utterance]]:
    """The fold's train, dev and test utterances that the dataset view still holds."""
    by_key = {u.key: u for u in data.utterances}
    fold = data.folds[fold_name]
    return {s: [by_key[k] for k in getattr(fold, s) if k in by_key]
            for s in ("train", "dev", "test")}


def load_inputs(plan: Plan, run: PlannedRun, device: Any, quiet: bool) -> Inputs:
    """Decoded waveforms for a fine-tuned upstream, else the frozen upstream's cached features."""
    from serbench.data.feeds import AudioFeed, CachedFeed

    cond, data, budget = run.condition, plan.dataset, plan.budget
    labels = {lab: i for i, lab in enumerate(data.labels)}
    splits = fold_splits(data, run.spec.fold)
    skipped = list(data.skipped)
    t0 = time.perf_counter()
    if cond.method.finetunes(cond.options):
        waves, skipped_here = _decode(data, [u for s in splits.values() for u in s],
                                      cond.upstream.sample_rate, plan.skip_bad_audio)
        splits = {s: [u for u in us if u.key in waves] for s, us in splits.items()}
        return Inputs(splits, lambda: AudioFeed(waves, splits, labels, budget.batch_seconds),
                      skipped + skipped_here, cond.upstream.revision, time.perf_counter() - t0)
    entry = _feature_entry(plan, run, device, quiet)
    skipped += [s for s in entry.skipped if s not in skipped]
    splits = {s: [u for u in us if u.key in entry.rows] for s, us in splits.items()}
    normalize = HarnessOptions.read(cond.method.name, cond.options).normalize
    layers = cond.layers_read()
    if not set(layers) <= set(range(entry.num_layers)):  # the upstream declared another depth
        layers = tuple(range(entry.num_layers))
    return Inputs(splits, lambda: CachedFeed(entry, splits, labels, budget.batch_seconds,
                                             pooled=cond.method.inputs == "pooled",
                                             normalize=normalize, layers=layers),
                  skipped, entry.revision, time.perf_counter() - t0)


def _feature_entry(plan: Plan, run: PlannedRun, device: Any, quiet: bool) -> Any:
    cond = run.condition
    # a pass that must run stores the frames every run of the plan reads: one pass for all
    return features_for(plan, cond.upstream, cond.frames_read(),
                        plan.frame_layers(cond.upstream.name), device, quiet)


def features_for(plan: Plan, upstream: Any, layers: tuple[int, ...] | None,
                 fill_layers: tuple[int, ...] | None, device: Any, quiet: bool) -> Any:
    """The plan's cache entry of ``upstream`` holding the frames of ``layers`` (``()``: pooled
    statistics only; None: every layer), filling those of ``fill_layers`` too when it has to
    fill; a cross-corpus view joins its two corpora's entries."""
    from serbench.data.features import cached_features

    data = plan.dataset
    kwargs = dict(skip_bad_audio=plan.skip_bad_audio, need_frames=layers != (), layers=layers,
                  fill_layers=fill_layers, quiet=quiet)
    joint = getattr(data, "features", None)
    if joint:
        return joint(upstream, device, **kwargs)
    return cached_features(upstream, data.spec.name, data.root, data.utterances, device,
                           key=data.entry_key(upstream), **kwargs)


def check_splits(splits: Mapping[str, Sequence[Utterance]], fold: str) -> None:
    for s in ("train", "test"):
        if not splits[s]:
            raise ConfigError(f"fold {fold} has no usable {s} utterances")
    if not splits["dev"]:
        raise ConfigError(f"fold {fold} has no dev utterances: the protocol must give dev")


def search(plan: Plan, run: PlannedRun, feed: Any, device: Any, world: Any,
           closing_items: int, progress: Progress | None) -> Fit:
    """Train one model per trial (the options the user did not fix, drawn from the method's
    search space), each on its share of the budget; keep the best on dev."""
    from serbench.contracts import method_model
    from serbench.run.training import measured, train

    spec, cond, budget = run.spec, run.condition, plan.budget
    free = sorted(k for k in cond.method.search_space if k not in cond.changed)
    n_trials = trial_count(budget, run)
    share = world.total_seconds if world else None
    trial_budget = budget if n_trials == 1 else replace(
        budget, max_steps=max(1, budget.max_steps // n_trials),
        max_device_seconds=budget.max_device_seconds / n_trials)
    best: Fit | None = None
    trials = []
    for trial in range(n_trials):
        options = {**cond.options,
                   **_sample_trial(cond.method.search_space, cond.changed, spec.seed, trial)}
        seed_everything(spec.seed)
        ctx = build_context(plan, run, options, device)
        with measured(device, share) as built:  # CLAP encodes its prompts here: metered
            model = method_model(cond.method.name, cond.method.build(ctx)).to(device)
        usage = train(world.wrap(model) if world else model, feed, trial_budget,
                      getattr(model, "stages", cond.method.stages),
                      HarnessOptions.read(cond.method.name, options).lr, device, spec.seed,
                      plan.dataset.labels, progress=progress, share_seconds=share,
                      spent=built.used, closing_items=closing_items)
        trials.append({"options": options, "best_dev_uar": usage.best_dev_uar,
                       "usage": usage.as_dict()})
        if best is None or (usage.best_dev_uar or 0) > (best.usage.best_dev_uar or 0):
            best = Fit(model, usage, options, trials, free if n_trials > 1 else [])
        else:
            del model
    assert best is not None
    return best


def trial_count(budget: Budget, run: PlannedRun) -> int:
    """How many trials a run's search trains: ``max_trials`` when some option of the method's
    search space is left free, else one."""
    cond = run.condition
    return budget.max_trials if any(k not in cond.changed for k in cond.method.search_space) else 1


def build_context(plan: Plan, run: PlannedRun, options: dict[str, Any], device: Any
                  ) -> BuildContext:
    """What a method's ``build`` sees for one trial."""
    cond = run.condition
    return BuildContext(
        labels=plan.dataset.labels, options=options, upstream=cond.upstream,
        dataset=plan.dataset.spec, device=device, seed=run.spec.seed,
        finetune_upstream=cond.method.finetunes(cond.options),
        load_upstream=lambda: cond.upstream.loader(device),
        text_encoder=lambda name: text_encoder(plan.components, name),
        stages=cond.method.stages,
    )


def predict_test(plan: Plan, fit: Fit, feed: Any, device: Any, world: Any
                     ) -> tuple[list[str], list[int], Any, list[dict[str, Any]]]:
    """The best model's test keys, gold and predicted label indices, and prediction rows."""
    import numpy as np

    from serbench.run.training import measured, predict

    labels = plan.dataset.labels
    speakers = {u.key: u.speaker for u in plan.dataset.utterances}
    with measured(device, world.total_seconds if world else None) as tested:
        keys, y, scores = predict(fit.model, feed.evaluate("test"), device, plan.budget)
    fit.usage.predict_seconds = tested.used
    fit.usage.device_seconds += tested.used
    pred = scores.argmax(1) if len(keys) else np.zeros(0, dtype=int)
    rows = [
        {"key": k, "speaker": speakers[k], "label": labels[t], "prediction": labels[int(p)],
         "scores": [round(float(v), 6) for v in s]}
        for k, t, p, s in zip(keys, y, pred, scores, strict=True)
    ]
    return keys, y, pred, rows


def execute_run(plan: Plan, run: PlannedRun, device: Any, quiet: bool = True,
                progress: Progress | None = None, world: Any = None
                ) -> tuple[RunRecord, list[dict[str, Any]]]:
    """Train and test one run; returns its record and predictions (nothing is stored here).
    ``world`` is the torchrun process group this rank joined (serbench.run.distributed)."""
    started = time.time()
    spec = run.spec
    seed_everything(spec.seed)
    inputs = load_inputs(plan, run, device, quiet)
    splits = inputs.splits
    check_splits(splits, spec.fold)
    feed = inputs.make_feed()
    fit = search(plan, run, feed, device, world, len(splits["dev"]) + len(splits["test"]),
                 progress)
    return finish_run(plan, run, inputs, fit, feed, device, world, started)


def finish_run(plan: Plan, run: PlannedRun, inputs: Inputs, fit: Fit, feed: Any, device: Any,
               world: Any, started: float) -> tuple[RunRecord, list[dict[str, Any]]]:
    """Predict the test set with a trained run's best model; its record and predictions (a run
    trained alone or in a group of seeds, serbench.run.grouped, ends here)."""
    from serbench.judge.metrics import compute_metrics

    spec, cond, splits = run.spec, run.condition, inputs.splits
    keys, y, pred, predictions = predict_test(plan, fit, feed, device, world)
    usage = fit.usage.as_dict()
    if fit.tuned:
        usage["trials"] = fit.trials
    finetune = cond.method.finetunes(cond.options)
    record = RunRecord(
        run_id=run.run_id, status="ok", spec=spec.as_dict(), seeds=seed_record(spec.seed),
        options=fit.options, budget=budget_record(plan.budget, device, frozen=not finetune),
        usage=usage, tuned=fit.tuned, modality=modality(cond.method),
        transductive=not finetune
        and HarnessOptions.read(cond.method.name, fit.options).normalize == "speaker",
        metrics=compute_metrics(y, pred.tolist(), plan.dataset.labels),
        labels=list(plan.dataset.labels), test_hash=test_set_hash(keys),
        data_hash=run.data_hash, n_train=len(splits["train"]), n_dev=len(splits["dev"]),
        n_test=len(splits["test"]), skipped_audio=inputs.skipped,
        upstream_revision=inputs.revision,
        method_info=dict(getattr(fit.model, "run_info", None) or {}),
        feature_seconds=round(inputs.seconds, 3),
        environment=environment(device, plan.components),
        duration_seconds=round(time.time() - started, 3),
        references=references_for_run(plan, run),
        cross_corpus=getattr(plan.dataset, "cross", None),
    )
    return record, predictions


def failed_record(plan: Plan, run: PlannedRun, error: str, device: Any) -> RunRecord:
    """The record of a run that raised ``error``: what was asked, nothing measured."""
    cond = run.condition
    return RunRecord(
        run_id=run.run_id, status="failed", error=error, spec=run.spec.as_dict(),
        data_hash=run.data_hash, options=cond.options,
        budget=budget_record(plan.budget, device, frozen=not cond.method.finetunes(cond.options)),
        usage=None, modality=modality(cond.method), metrics=None,
        environment=environment(device, plan.components),
    )


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

    done: set[str] = set()
    for run in runs:
        cond = run.condition
        if not cond.frozen or cond.upstream.name in done:
            continue
        done.add(cond.upstream.name)
        try:
            layers = plan.frame_layers(cond.upstream.name)
            features_for(plan, cond.upstream, layers, layers, device, quiet)
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
