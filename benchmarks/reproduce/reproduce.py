"""Reproduce the SUPERB ER probe and the seeds' methods on one GPU, with the papers' numbers beside.

    python benchmarks/reproduce/reproduce.py check     # < 2 min: GPU, bf16, NCCL, throughput, env
    python benchmarks/reproduce/reproduce.py estimate  # GPU-hours and cache size per suite
    python benchmarks/reproduce/reproduce.py all --data-root /corpora   # check, estimate, run
    python benchmarks/reproduce/reproduce.py all --tiny                 # the same on CPU, < 60 s

`all` runs `superb_er` then `seeds_iemocap` (stored runs are skipped: run it again after an
interruption) and writes leaderboard.md / leaderboard.html with the published references.
`--tiny` maps every named upstream to a tiny random model of its family saved under --work,
generates IEMOCAP trees as the tests do, and runs 1 fold × 1 seed under a few-step budget.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SUITES = REPO / "benchmarks" / "suites"
RUN = ("superb_er", "seeds_iemocap")
TINY_BUDGET = {"base": "smoke", "max_steps": 4, "eval_every": 2, "batch_seconds": 8}
HUB = {"wavlm": "microsoft/wavlm-", "hubert": "facebook/hubert-", "wav2vec2": "facebook/wav2vec2-"}


def say(text: str) -> None:
    print(f"[reproduce] {text}", flush=True)


# ------------------------------------------------------------------------------------ check


def check_device(tiny: bool) -> dict[str, Any]:
    """CUDA, one bf16 autocast step, one-process DDP and the forward throughput of a randomly
    initialised WavLM Large (tiny: a tiny WavLM on CPU). Returns the measured throughput."""
    import torch
    import torch.distributed as dist
    import transformers as tf

    cuda = torch.cuda.is_available()
    if not cuda and not tiny:
        raise SystemExit("reproduce: error: no CUDA device visible (check nvidia-smi and the "
                         "torch build); --tiny runs on CPU")
    device = torch.device("cuda" if cuda else "cpu")
    say(f"device: {torch.cuda.get_device_name(0) if cuda else 'cpu'} (torch {torch.__version__})")
    layer = torch.nn.Linear(64, 64).to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        out = layer(torch.randn(8, 64, device=device))
    out.float().sum().backward()
    assert out.dtype == torch.bfloat16 and layer.weight.grad is not None
    say("bf16 autocast step: ok")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = "nccl" if cuda else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0,
                            world_size=1)
    try:
        ddp = torch.nn.parallel.DistributedDataParallel(layer, device_ids=[0] if cuda else None)
        ddp(torch.randn(4, 64, device=device)).sum().backward()
    finally:
        dist.destroy_process_group()
    say(f"{backend} DDP with one process: ok")
    size = (dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, conv_dim=(16,) * 7, num_buckets=32,
                 max_bucket_distance=64) if tiny else
            dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                 intermediate_size=4096, feat_extract_norm="layer", do_stable_layer_norm=True))
    model = tf.WavLMModel(tf.WavLMConfig(**size)).to(device).eval()
    batch, seconds = (2, 1.0) if tiny else (8, 10.0)
    audio = torch.randn(batch, int(16000 * seconds), device=device)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
        model(audio)  # warm-up
        if cuda:
            torch.cuda.synchronize()
        start, reps = time.perf_counter(), 1 if tiny else 5
        for _ in range(reps):
            model(audio)
        if cuda:
            torch.cuda.synchronize()
    speed = batch * seconds * reps / (time.perf_counter() - start)
    say(f"WavLM {'tiny' if tiny else 'Large'} (random weights) forward: {speed:.0f} s of audio "
        "per second")
    return {"throughput": speed}


def check_environment(suites: list[Path], data_root: str | None, cache_need: int) -> list[str]:
    """Weights present or downloadable, corpora found, disk for the cache: problems, if any."""
    from serbench.data.features import cache_root
    from serbench.data.manifests import resolve_root
    from serbench.registry import collect
    from serbench.run.suites import _Checker, _entries, read_suite

    components = collect()
    problems = []
    upstreams, datasets = set(), set()
    for path in suites:
        for e in _entries(_Checker(path), read_suite(path), components, False):
            upstreams.update(e.upstreams)
            datasets.add(e.dataset)
            upstreams.update(v for k, v in e.options.items() if k == "text_encoder")
    for name in sorted(upstreams):
        where = _weights(components.upstreams.get(name))
        if where:
            say(f"weights {name}: {where}")
        else:
            problems.append(f"weights of {name} are neither in the Hugging Face cache nor "
                            "downloadable (set HF_HOME or log in)")
    for name in sorted(datasets):
        try:
            say(f"corpus {name}: {resolve_root(components.datasets.get(name), data_root)}")
        except Exception as exc:  # noqa: BLE001 - reported, the run would fail the same way
            problems.append(str(exc))
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    say(f"feature cache {root}: {free / 1e9:.1f} GB free, {cache_need / 1e9:.1f} GB needed")
    if free < cache_need:
        problems.append(f"{root} has {free / 1e9:.1f} GB free but the cache needs "
                        f"{cache_need / 1e9:.1f} GB: point SERBENCH_CACHE at a larger disk")
    return problems


def _weights(spec: Any) -> str | None:
    """Where an upstream's weights are: none needed, a package, a local folder, the Hugging Face
    cache or the hub (None: nowhere)."""
    if not spec.trainable:
        return "none needed"
    source = spec.source or ""
    if not source.startswith("transformers:"):
        return f"shipped ({source})"
    repo = source.split(":", 1)[1]
    if Path(repo).is_dir():
        return f"local folder {repo}"
    from huggingface_hub import model_info, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(repo, "config.json", revision=spec.revision), str):
        return f"Hugging Face cache ({repo})"
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return None
    try:
        model_info(repo, revision=spec.revision, timeout=10)
        return f"downloadable ({repo})"
    except Exception:  # noqa: BLE001 - any failure means: not reachable
        return None


# ------------------------------------------------------------------------------------ tiny mode


def family(upstream: str) -> tuple[str, str] | None:
    """The tiny model family and feature-encoder norm of a named upstream (None: no weights)."""
    for fam in ("wavlm", "hubert", "wav2vec2", "data2vec", "whisper"):
        if upstream.startswith(fam):
            return fam, "layer" if "large" in upstream else "group"
    return None


def tiny_suites(work: Path) -> tuple[list[Path], Path]:
    """Tiny copies of the suites (upstreams -> hf:<dir>, 1 fold × 1 seed, a few steps, MiniLM
    text) and the generated corpora they run on."""
    import numpy as np
    import soundfile as sf

    from serbench.testing import tiny_transformers_model

    sys.path.insert(0, str(REPO / "tests"))
    from test_datasets_iemocap import build_tree

    corpora = work / "corpora"
    if not corpora.is_dir():
        root = build_tree(corpora)
        rng = np.random.default_rng(0)
        for wav in root.rglob("*.wav"):
            if not wav.name.startswith("._"):
                sf.write(str(wav), 0.1 * rng.standard_normal(8000).astype(np.float32), 16000)
    out = []
    for name in RUN:
        data = yaml.safe_load((SUITES / f"{name}.yaml").read_text())
        mapped: dict[str, str] = {}
        for entry in data["entries"]:
            ups = entry["upstreams"] if isinstance(entry["upstreams"], list) else [
                entry["upstreams"]]
            for u in ups:
                fam = family(u)
                if fam and u not in mapped:
                    folder = work / "models" / u
                    if not (folder / "config.json").is_file():
                        tiny_transformers_model(fam[0], folder, norm=fam[1])
                    mapped[u] = f"hf:{folder}"
            entry["upstreams"] = [mapped.get(u, u) for u in ups]
            for ref in entry.get("references", []):
                if ref.get("upstream") in mapped:
                    ref["upstream"] = mapped[ref["upstream"]]
            options = entry.get("options", {})
            if "text_encoder" in options:
                options["text_encoder"] = "minilm"
            if "gmp_tl" in entry["methods"]:  # a few hundred frames: fewer clusters
                entry["options"] = {**options, "k_values": "4,8"}
        data.update(seeds=1, folds=[0], budget=TINY_BUDGET, suite=f"{name}_tiny")
        path = work / f"{name}_tiny.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        out.append(path)
    return out, corpora


# ------------------------------------------------------------------------------------ steps


def estimates(suites: list[Path], throughput: float | None,
              data_root: str | None = None) -> list[tuple[str, Any]]:
    """Per suite: GPU-hours and cache size (durations of the corpora under ``data_root`` when
    given, else the published totals)."""
    from serbench.data.view import load_dataset
    from serbench.registry import collect
    from serbench.run.estimate import LARGE_THROUGHPUT, Corpus, estimate, suite_cells

    components = collect()
    corpora = {"iemocap": Corpus.of_view(load_dataset(components, "iemocap", data_root, None,
                                                      {}))} if data_root else {}
    return [(p.stem, estimate(suite_cells(p, components, corpora),
                              throughput or LARGE_THROUGHPUT)) for p in suites]


def run_suites(suites: list[Path], data_root: str, results: Path) -> None:
    from serbench.cli import main

    for path in suites:
        say(f"running {path.stem} (stored runs are skipped)")
        code = main(["run", "--suite", str(path), "--data-root", data_root, "--results",
                     str(results), "--quiet"])
        if code:
            raise SystemExit(f"reproduce: error: suite {path.stem} had failed runs (exit {code});"
                             " their errors are stored: fix and run the same command again")


def leaderboards(suites: list[Path], results: Path) -> list[Path]:
    from serbench.cli import main

    out = []
    for fmt in ("md", "html"):
        target = results.parent / f"leaderboard.{fmt}"
        argv = ["leaderboard", "--results", str(results), "--format", fmt, "--output",
                str(target), "--metric", "war"]
        for path in suites:
            argv += ["--suite", str(path)]
        if main(argv):
            raise SystemExit("reproduce: error: the leaderboard failed (see above)")
        out.append(target)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("step", nargs="?", choices=("check", "estimate", "all"), default="all")
    p.add_argument("--tiny", action="store_true", help="tiny models, generated corpora, CPU")
    p.add_argument("--data-root", help="folder holding IEMOCAP_full_release/ (not with --tiny)")
    p.add_argument("--work", default="reproduce-work", help="results, leaderboards, tiny models")
    args = p.parse_args(argv)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    full = [SUITES / f"{n}.yaml" for n in RUN]
    if args.tiny:
        os.environ.setdefault("SERBENCH_CACHE", str(work / "cache"))
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        suites, corpora = tiny_suites(work)
        data_root = str(corpora)
    else:
        suites, data_root = full, args.data_root
    measured = check_device(args.tiny) if args.step in ("check", "all") else {}
    site = estimates(full, None if args.tiny else measured.get("throughput"))
    from serbench.run.estimate import describe

    for line in describe(site):
        say(f"estimate (full suites, one GPU): {line}")
    if args.step == "estimate":
        return 0
    need = sum(e.cache_bytes for _, e in (estimates(suites, None, data_root) if args.tiny
                                           else site))
    problems = check_environment(suites, data_root, need)
    if problems:
        for problem in problems:
            print(f"reproduce: error: {problem}", file=sys.stderr)
        return 2
    if args.step == "check":
        return 0
    if not data_root:
        raise SystemExit("reproduce: error: pass --data-root (the folder holding the corpora)")
    results = work / "results"
    run_suites(suites, data_root, results)
    for path in leaderboards(suites, results):
        say(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
