"""Speed of a frozen upstream on EmoDB, measured side by side in one process.

    python benchmarks/speed_frozen.py [--data-root DIR] [--seeds 3] [--s3prl-steps 3]

Upstream: a randomly initialised base-size WavLM (``transformers.WavLMConfig()`` defaults: 12
layers x 768, 94 M parameters) saved with ``save_pretrained`` into a temporary folder and loaded
through the real ``hf:<dir>`` upstream.

(a) ``floor_seconds``: one forward pass over all 535 files in the length buckets the cache fills
    with (audio decoded beforehand, so this is the model's time alone); the best of two passes
    (both printed), so a pass slowed by other work on the machine does not flatter the ratios.
(b) ``cold_seconds``: the whole ``linear`` protocol as ``serbench run --workers N`` runs it (10
    LOSO folds x 3 seeds, 1,000 steps each, dev evaluation every 100 steps, test predictions,
    results stored), starting from an empty feature cache: the cache fill is part of it (the
    driver fills the entry on every core, then N worker processes train, one run each at a
    time, on ``cores / N`` threads).
(c) ``warm_seconds``: the same again into a new results folder, the cache filled. Workers are
    new processes: they open and check the entry as any later sweep does. This is without the
    process start-up of a command (interpreter, imports, plugins); ``warm_cli_seconds`` is the
    same protocol as a new ``serbench run`` process, start-up included. The seeds and folds of
    the condition train in groups (serbench.run.grouped; ``runs_per_unit`` prints them).
(d) ``s3prl_seconds``: the s3prl way, the upstream forward inside every training step. A few
    steps on the same batches are timed and extrapolated to 1,000 steps per run, plus its dev
    evaluations (each a forward over the dev audio, at the floor's seconds per audio second).

Threads: forward passes (the floor, the cache fill, the s3prl steps' upstream) use
``serbench.data.features.fill_threads()`` (every core). ``--workers`` (default: one per core) says
how
many runs train at once; with ``--workers 1`` they train in this process on ``--train-threads``
(1: a small head trains faster on one intra-op thread than on two that wait for each other).

Budget ``speed``: 1,000 steps, ``batch_seconds`` chosen so that the training batches of the
first fold hold 32 utterances on average (printed), ``eval_every`` 100, 1,800 device seconds
(the ``probe`` preset's, never reached). ``padding_fraction`` is over frames of those training
batches; ``padding_fraction_random8`` is random batches of 8 for comparison.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
STEPS = 1000
EVAL_EVERY = 100
TARGET_ITEMS = 32


def say(name: str, value: Any) -> None:
    print(f"{name}: {round(value, 4) if isinstance(value, float) else value}", flush=True)


def build_wavlm(folder: Path, **config: Any) -> Path:
    """A randomly initialised WavLM (base size unless ``config`` changes ``WavLMConfig``) and its
    feature extractor, saved to ``folder``: what the benchmarks load through ``hf:<dir>``."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    tf.WavLMModel(tf.WavLMConfig(**config)).save_pretrained(folder)
    tf.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                do_normalize=True, return_attention_mask=False
                                ).save_pretrained(folder)
    return folder


def batch_seconds_for(durations: Sequence[float], items: float) -> float:
    """The smallest ``batch_seconds`` (0.5 s grid) whose buckets hold ``items`` on average."""
    from serbench.data.batching import bucket_batches

    seconds = 2 * max(durations)
    while len(durations) / len(bucket_batches(durations, seconds, seed=0)) < items:
        seconds += 0.5
    return seconds


def floor(spec: Any, waves: dict[str, Any], utts: Sequence[Any], device: Any) -> float:
    """Seconds for one forward pass over every utterance, in the cache's inference batches."""
    import torch

    from serbench.data.features import fill_threads, inference_batches, threads

    module = spec.loader(device)
    start = time.perf_counter()
    for batch in inference_batches([u.duration for u in utts]):
        arrays = [waves[utts[i].key] for i in batch]
        lengths = torch.tensor([len(a) for a in arrays])
        padded = torch.zeros(len(arrays), int(lengths.max()))
        for j, a in enumerate(arrays):
            padded[j, : len(a)] = torch.from_numpy(a)
        with torch.inference_mode(), threads(fill_threads()):
            module(padded.to(device), lengths.to(device))
    return time.perf_counter() - start


def protocol(components: Any, upstream: str, root: Path, budget: Any, seeds: int,
             results: Path, device: Any, workers: int) -> float:
    from serbench.run.executors import LocalExecutor
    from serbench.run.grouped import units
    from serbench.run.planning import make_plan
    from serbench.store import Store

    start = time.perf_counter()
    executor = LocalExecutor(workers)  # as `serbench run`: before planning
    store = Store(results)
    plan = make_plan(components, methods=["linear"], upstreams=[upstream], dataset="emodb",
                     data_root=root, budget=budget, seeds=seeds, store=store)
    say(f"runs_per_unit_{results.name}",
        [len(u) for u in units([(plan, r) for r in plan.todo()], workers)])
    outcomes = executor.run([plan], store, device=str(device), quiet=True)
    elapsed = time.perf_counter() - start
    bad = [o for o in outcomes if o["status"] != "ok"]
    if bad:
        sys.exit(f"speed_frozen: {len(bad)} runs failed, first: {bad[0]['error']}")
    say(f"runs_{results.name}", len(outcomes))
    say(f"mean_test_uar_{results.name}",
        statistics.mean(o["metrics"]["uar"] for o in outcomes))
    return elapsed


def cli_protocol(upstream: str, data_root: Path, budget: Any, seeds: int, work: Path,
                 workers: int) -> float:
    """Seconds of the warm protocol as a new ``serbench run`` process, start-up included."""
    import dataclasses
    import json
    import subprocess

    limits = {k: v for k, v in dataclasses.asdict(budget).items() if k != "name"}
    (work / "budgets.yaml").write_text(json.dumps({budget.name: limits}))  # JSON is YAML
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "serbench", "run", "--method", "linear", "--upstream", upstream,
         "--dataset", "emodb", "--data-root", str(data_root), "--budgets",
         str(work / "budgets.yaml"), "--budget", budget.name, "--seeds", str(seeds),
         "--workers", str(workers), "--device", "cpu", "--results", str(work / "warm-cli"),
         "--quiet"], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"speed_frozen: serbench run failed: {done.stderr.strip()[-500:]}")
    return elapsed


def s3prl_step_seconds(spec: Any, components: Any, data: Any, waves: dict[str, Any],
                       budget: Any, device: Any, steps: int) -> float:
    """Mean seconds of a training step that runs the frozen upstream on the batch's audio."""
    import torch

    from serbench.data.features import fill_threads, threads
    from serbench.data.feeds import AudioFeed
    from serbench.specs import BuildContext

    fold = next(iter(data.folds.values()))
    by_key = {u.key: u for u in data.utterances}
    splits = {s: [by_key[k] for k in getattr(fold, s)] for s in ("train", "dev", "test")}
    labels = data.labels
    feed = AudioFeed(waves, splits, {lab: i for i, lab in enumerate(labels)},
                     budget.batch_seconds)
    method = components.methods.get("linear")
    ctx = BuildContext(labels=labels, options=dict(method.defaults), upstream=spec,
                       dataset=data.spec, device=device, seed=0, finetune_upstream=False,
                       load_upstream=lambda: spec.loader(device),
                       text_encoder=components.upstreams.get)
    head = method.build(ctx).to(device)
    upstream = spec.loader(device)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.0)
    batches = feed.train(0)
    times = []
    for _ in range(steps):
        batch = next(batches).to(device)
        start = time.perf_counter()
        with torch.no_grad(), threads(fill_threads()):  # s3prl: frozen upstream under no_grad
            hidden, frames = upstream(batch.waveforms, batch.lengths)
        batch.features, batch.lengths = list(hidden), frames
        optimizer.zero_grad(set_to_none=True)
        head.loss(batch).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.mean(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=os.environ.get(
        "SERBENCH_TEST_DATA", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--s3prl-steps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="runs of (b) and (c) at once, as `serbench run --workers N` "
                        "(default: one per core)")
    parser.add_argument("--train-threads", type=int, default=1,
                        help="torch threads while training heads with --workers 1 (workers "
                        "share the cores; forward passes use "
                        "serbench.data.features.fill_threads(): "
                        "every core unless SERBENCH_FILL_THREADS says otherwise)")
    parser.add_argument("--workdir", default=None, help="where the model, cache and results go "
                        "(default: a temporary folder, removed afterwards)")
    args = parser.parse_args()
    # everything the runs use, imported now: a long run is not affected by later edits
    import serbench_baselines.probes  # noqa: F401
    import serbench_upstreams.hf_audio  # noqa: F401

    import serbench.data.feeds
    import serbench.judge.metrics
    import serbench.run.execution
    import serbench.run.training  # noqa: F401

    with tempfile.TemporaryDirectory(prefix="serbench-speed-", dir=args.workdir) as tmp:
        work = Path(tmp)
        os.environ["SERBENCH_CACHE"] = str(work / "cache")
        os.environ["HF_HUB_OFFLINE"] = "1"
        run(args, work)


def run(args: argparse.Namespace, work: Path) -> None:
    import torch

    from serbench.data import features
    from serbench.data.audio import load_audio
    from serbench.data.batching import bucket_batches, padding_fraction
    from serbench.data.manifests import audio_path
    from serbench.data.view import load_dataset
    from serbench.registry import collect
    from serbench.run.devices import resolve_device
    from serbench.specs import Budget

    device = resolve_device("auto")
    components = collect()
    upstream = f"hf:{build_wavlm(work / 'wavlm-base-random')}"
    spec = components.upstreams.get(upstream)
    data = load_dataset(components, "emodb", args.data_root, None, {})
    utts = data.utterances
    audio_total = sum(u.duration for u in utts)
    say("device", str(device))
    torch.set_num_threads(args.train_threads)
    say("workers", args.workers)
    say("train_threads", torch.get_num_threads() if args.workers == 1
        else max(1, (os.cpu_count() or 1) // args.workers))
    say("fill_threads", features.fill_threads())
    say("upstream", f"{upstream} (WavLMConfig() defaults, random weights)")
    say("utterances", len(utts))
    say("audio_seconds", audio_total)

    fold = next(iter(data.folds.values()))
    by_key = {u.key: u for u in utts}
    train_durations = [by_key[k].duration for k in fold.train]
    seconds = batch_seconds_for(train_durations, TARGET_ITEMS)
    budget = Budget("speed", max_steps=STEPS, batch_seconds=seconds, max_device_seconds=1800.0,
                    eval_every=EVAL_EVERY)
    train_batches = bucket_batches(train_durations, seconds, seed=0)
    say("batch_seconds", seconds)
    say("utterances_per_batch", len(train_durations) / len(train_batches))
    n_runs = len(data.folds) * args.seeds
    say("runs", n_runs)


    start = time.perf_counter()
    waves = {u.key: load_audio(audio_path(data.root, u), spec.sample_rate) for u in utts}
    say("decode_seconds", time.perf_counter() - start)

    passes = [floor(spec, waves, utts, device) for _ in range(2)]
    say("floor_passes", [round(x, 1) for x in passes])
    floor_s = min(passes)
    say("floor_seconds", floor_s)
    cold = protocol(components, upstream, data.root, budget, args.seeds, work / "cold", device,
                    args.workers)
    say("cold_seconds", cold)
    features._OPEN.clear()  # for --workers 1: entries read and checked as in a new process
    features._VERIFIED.clear()
    warm = protocol(components, upstream, data.root, budget, args.seeds, work / "warm", device,
                    args.workers)
    say("warm_seconds", warm)
    warm_cli = cli_protocol(upstream, Path(args.data_root), budget, args.seeds, work, args.workers)
    say("warm_cli_seconds", warm_cli)

    step = s3prl_step_seconds(spec, components, data, waves, budget, device, args.s3prl_steps)
    dev_seconds = statistics.mean(
        sum(by_key[k].duration for k in f.dev) for f in data.folds.values())
    eval_cost = (STEPS // EVAL_EVERY) * dev_seconds * floor_s / audio_total
    s3prl = n_runs * (STEPS * step + eval_cost)
    say("s3prl_step_seconds", step)
    say("s3prl_seconds", s3prl)

    entry = features.cached_features(spec, "emodb", data.root, utts, device, quiet=True,
                                     need_frames=False)
    frames = [entry.n_frames(k) for k in fold.train]
    say("padding_fraction", padding_fraction(frames, train_batches))
    all_frames = [entry.n_frames(u.key) for u in utts]
    say("padding_fraction_inference",
        padding_fraction(all_frames, features.inference_batches([u.duration for u in utts])))
    order = list(range(len(frames)))
    random.Random(0).shuffle(order)
    say("padding_fraction_random8",
        padding_fraction(frames, [order[i : i + 8] for i in range(0, len(order), 8)]))
    say("cache_bytes", sum(p.stat().st_size for p in entry.path.iterdir()))
    say("ratio_cold_over_floor", cold / floor_s)
    say("ratio_warm_over_floor", warm / floor_s)
    say("ratio_warm_cli_over_floor", warm_cli / floor_s)
    say("ratio_s3prl_over_cold", s3prl / cold)


if __name__ == "__main__":
    main()
