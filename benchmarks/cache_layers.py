"""What the feature cache stores for a plan, on real EmoDB, measured on disk.

    python benchmarks/cache_layers.py [--data-root DIR] [--layers 12 --width 768]

Upstream: a randomly initialised WavLM (``--layers`` transformer layers of ``--width``; the
defaults are the base size, 13 hidden states of 768) saved with ``save_pretrained`` and loaded
through the real ``hf:<dir>`` upstream. One fold, one seed, the ``smoke`` budget: the runs are
there to make the cache fill as a sweep would; the numbers are the fills.

Cache A takes three plans in turn, as a user would: ``linear`` (pooled inputs: statistics only),
then ``mlp --option layer=last`` (adds the last layer's frames), then ``mlp`` (the weighted sum:
adds every other layer). Cache B fills every layer at once (``mlp`` first). Printed per step: the
entry's bytes on disk, the seconds the fill took (``meta.json``: ``fill_seconds`` and each
``extended`` pass) and the estimator's bytes for the same plan; then whether the runs' predictions
are byte-identical between the two caches.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from speed_frozen import build_wavlm  # noqa: E402


def build(folder: Path, layers: int, width: int) -> Path:
    return build_wavlm(folder, num_hidden_layers=layers, hidden_size=width,
                       num_attention_heads=max(1, width // 64), intermediate_size=4 * width)


def run(upstream: str, data_root: str, results: Path, cache: Path, method: str,
        *options: str) -> dict[str, str]:
    """One fold of ``method`` through the CLI; {run id: sha256 of its predictions}."""
    args = [sys.executable, "-m", "serbench", "run", "--method", method, "--upstream", upstream,
            "--dataset", "emodb", "--data-root", data_root, "--budget", "smoke", "--seeds", "1",
            "--folds", "03", "--results", str(results), "--json", "--quiet"]
    for option in options:
        args += ["--option", option]
    done = subprocess.run(args, capture_output=True, text=True,
                          env={**os.environ, "SERBENCH_CACHE": str(cache)})
    if done.returncode != 0:
        sys.exit(f"cache_layers: {method} failed: {done.stderr.strip()[-500:]}")
    out = {}
    for line in done.stdout.splitlines():
        rid = json.loads(line)["run_id"]
        data = (results / "runs" / rid / "predictions.jsonl").read_bytes()
        out[rid] = hashlib.sha256(data).hexdigest()
    return out


def entry(cache: Path) -> tuple[int, dict]:
    [path] = [p for p in (cache / "features").glob("*/*") if (p / "meta.json").is_file()]
    size = sum(p.stat().st_size for p in path.iterdir())
    return size, json.loads((path / "meta.json").read_text())["body"]


def estimated(upstream: str, data_root: str, methods: list[str], options: dict) -> int:
    from serbench.registry import collect
    from serbench.run.estimate import Corpus, cache_bytes
    from serbench.run.planning import make_plan

    plan = make_plan(collect(), methods=methods, upstreams=[upstream], dataset="emodb",
                     data_root=data_root, budget="smoke", options=options)
    return cache_bytes(plan.runs[0].condition.upstream, Corpus.of_view(plan.dataset),
                       plan.frame_layers(upstream))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=os.environ.get(
        "SERBENCH_TEST_DATA", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--width", type=int, default=768)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serbench-cache-layers-") as tmp:
        work = Path(tmp)
        upstream = f"hf:{build(work / 'wavlm', args.layers, args.width)}"
        os.environ["HF_HUB_OFFLINE"] = "1"
        a, b = work / "cache-a", work / "cache-b"
        steps = [("linear", (), ["linear"], {}),
                 ("mlp layer=last", ("layer=last",), ["mlp"], {"layer": "last"}),
                 ("mlp (weighted)", (), ["mlp"], {})]
        preds_a: dict[str, str] = {}
        print(f"upstream: WavLM, {args.layers + 1} hidden states x {args.width}, random weights")
        print("| cache A, plan by plan | entry on disk | estimated | frame layers | pass s |")
        print("|---|---:|---:|---|---:|")
        for name, options, methods, opts in steps:
            preds_a.update(run(upstream, args.data_root, work / "res-a", a, methods[0],
                               *options))
            size, meta = entry(a)
            passes = [meta["fill_seconds"]] + [e["seconds"] for e in meta.get("extended", [])]
            est = estimated(upstream, args.data_root, methods, opts)
            layers = meta["frame_layers"]
            shown = "none" if not layers else "all" if len(layers) == meta["layers"] else layers
            print(f"| {name} | {size / 1e6:.1f} MB | {est / 1e6:.1f} MB (this plan alone) | "
                  f"{shown} | {passes[-1]:.1f} |")
        preds_b: dict[str, str] = {}
        for _, options, methods, _ in [steps[2], steps[0], steps[1]]:
            preds_b.update(run(upstream, args.data_root, work / "res-b", b, methods[0],
                               *options))
        size, meta = entry(b)
        print(f"| cache B, every layer at once | {size / 1e6:.1f} MB | | all | "
              f"{meta['fill_seconds']:.1f} |")
        same = preds_a == preds_b
        print(f"predictions of the {len(preds_a)} runs byte-identical between A and B: {same}")
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
