"""Grouped against separate training of the frozen protocol's runs, in one process.

    python benchmarks/speed_grouped.py [--data-root DIR] [--seeds 3] [--folds 10] [--repeats 2]

The ``linear`` protocol of ``speed_frozen.py`` (1,000 steps, dev evaluation every 100 steps, 32
utterances a batch) on EmoDB features with a base model's shape (13 hidden states x 768), from a
randomly initialised WavLM whose convolutions and feed-forward layers are shrunk so that the
cache fills in under a minute: the runs read the same (N, 13, 768) pooled features as from a
base model. Each repeat runs the protocol with the runs grouped (serbench.run.grouped) and one by
one (grouping switched off in this process), each into a new results folder, on one intra-op
thread, and prints wall and CPU seconds and the largest difference in test UAR between the two.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from speed_frozen import STEPS, TARGET_ITEMS, batch_seconds_for, build_wavlm, say  # noqa: E402


def build_shaped_wavlm(folder: Path) -> Path:
    """A random WavLM with 13 hidden states of 768 and cheap convolutions and feed-forwards."""
    return build_wavlm(folder, intermediate_size=64, num_attention_heads=4, conv_dim=(32,) * 7,
                       num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)


def protocol(plan_args: dict[str, Any], results: Path, grouped: bool) -> tuple[float, float, Any]:
    """Wall and CPU seconds of the runs, and their test UAR by run id."""
    import serbench.run.grouped as grouping
    from serbench.registry import collect
    from serbench.run.inprocess import run_plan
    from serbench.run.planning import make_plan
    from serbench.store import Store

    most = grouping.most_members
    if not grouped:
        grouping.most_members = lambda budget: 0  # every run alone
    try:
        store = Store(results)
        plan = make_plan(collect(), store=store, **plan_args)
        wall, cpu = time.perf_counter(), time.process_time()
        outcomes = run_plan(plan, store, device="cpu", quiet=True)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        grouping.most_members = most
    bad = [o for o in outcomes if o["status"] != "ok"]
    if bad:
        sys.exit(f"speed_grouped: {len(bad)} runs failed, first: {bad[0]['error']}")
    return wall, cpu, {o["run_id"]: o["metrics"]["uar"] for o in outcomes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=os.environ.get(
        "SERBENCH_TEST_DATA", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--folds", type=int, default=10, help="the first N folds")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import torch

    from serbench.data.features import cached_features
    from serbench.data.view import load_dataset
    from serbench.registry import collect
    from serbench.specs import Budget

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="serbench-grouped-") as tmp:
        work = Path(tmp)
        os.environ["SERBENCH_CACHE"] = str(work / "cache")
        os.environ["HF_HUB_OFFLINE"] = "1"
        upstream = f"hf:{build_shaped_wavlm(work / 'wavlm-shaped')}"
        components = collect()
        data = load_dataset(components, "emodb", args.data_root, None, {})
        fold = next(iter(data.folds.values()))
        by_key = {u.key: u for u in data.utterances}
        seconds = batch_seconds_for([by_key[k].duration for k in fold.train], TARGET_ITEMS)
        budget = Budget("speed", max_steps=STEPS, batch_seconds=seconds,
                        max_device_seconds=1800.0, eval_every=100)
        start = time.perf_counter()
        cached_features(components.upstreams.get(upstream), "emodb", data.root, data.utterances,
                        torch.device("cpu"), quiet=True, need_frames=False)
        say("fill_seconds", time.perf_counter() - start)
        plan_args = {"methods": ["linear"], "upstreams": [upstream], "dataset": "emodb",
                     "data_root": data.root, "budget": budget, "seeds": args.seeds,
                     "folds": [str(i) for i in range(args.folds)]}
        say("runs", args.seeds * args.folds)
        for repeat in range(args.repeats):
            found = {}
            for grouped in (True, False):
                name = f"{'grouped' if grouped else 'separate'}_{repeat}"
                wall, cpu, found[grouped] = protocol(plan_args, work / name, grouped)
                say(f"{name}_wall_seconds", wall)
                say(f"{name}_cpu_seconds", cpu)
                say(f"{name}_ms_per_run_step", 1000 * cpu / (STEPS * len(found[grouped])))
            say(f"max_uar_difference_{repeat}",
                max(abs(found[True][k] - found[False][k]) for k in found[True]))


if __name__ == "__main__":
    main()
