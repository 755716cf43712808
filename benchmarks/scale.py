"""How the cost of each step grows with the number of utterances (issue 17 §3).

    nice python benchmarks/scale.py --sizes 1000,5000,20000,50000 --workdir ~/serbench-scale

A generated corpus: ``max(sizes)`` short utterances (0.5-1.5 s of 16 kHz tone and noise, one in
ten FLAC, the rest WAV; four labels; 25 utterances per speaker, so 2,000 speakers at 50k; five
speaker-independent folds in the manifest's ``fold`` column), written once into ``--workdir``
and reused by later invocations. Each size reads the first N rows through its own CSV manifest,
with the real ``manifest`` dataset plugin and fold code, and its own ``$SERBENCH_CACHE`` and
results folder. The upstream is a randomly initialised tiny WavLM (``serbench.testing``:
real strides, 320 samples a frame, 2 layers of 32) loaded through the real ``hf:<dir>`` upstream.

Steps, in this order for each size, each in its own forked process (imports are paid once, by
the parent, before any fork; no step shares a memo with another):

- ``load (parse)``: ``load_dataset`` with an empty manifest cache (every audio header read);
- ``load (cached)``: the same again, from the manifest cache;
- ``plan (hash audio)``: ``make_plan`` for linear and mlp × 5 folds × 3 seeds (30 runs), the
  first time: every audio file's content is hashed for the fold fingerprints;
- ``plan (cached)``: the same plan again (digests memoised);
- ``fill``: the feature cache entry the sweep reads (``prepare_features``, as the driver does);
- ``sweep``: linear and mlp × ``--folds`` × ``--seeds`` runs under the ``smoke`` budget (40 steps
  of 60 s of audio: fixed work per run, so what grows is the data handling), stored;
- ``leaderboard``: ``serbench.api.leaderboard`` over the stored runs (predictions parsed);
- ``compare``: ``serbench.api.compare`` of linear against mlp.

Per step: wall seconds, and the growth of resident memory during the step (the peak, VmHWM,
reset just before it through ``/proc/self/clear_refs``, minus the resident set at its start: the
data loaded to set the step up is not counted, the step's own allocations are), with its
anonymous part in brackets (``RssAnon`` polled every 10 ms: the heap, without the pages of a
memory-mapped cache file, which are page cache). The exponent is the least-squares slope of
log(cost) against log(utterances) (memory floored at 1 MB); a step whose time exponent exceeds
1.2 is flagged ``(!)``. Linux only (``/proc``, ``fork``). The full table takes about 8 minutes of
CPU after the corpus is written (3 minutes, once); the default sizes about one.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 16000
LABELS = ("angry", "happy", "neutral", "sad")
PER_SPEAKER = 25
N_FOLDS = 5
PLAN_SEEDS = 3
METHODS = ("linear", "mlp")
FLAGGED = 1.2  # a time exponent above this is not N log N


# ------------------------------------------------------------------------------------ corpus


def utterance(i: int) -> dict[str, Any]:
    """The i-th utterance's manifest row, the same whatever the corpus size."""
    import numpy as np

    rng = np.random.default_rng(i)
    speaker = i // PER_SPEAKER
    ext = "flac" if i % 10 == 9 else "wav"
    return {"path": f"audio/{i // 1000:03d}/u{i:06d}.{ext}", "key": f"u{i:06d}",
            "label": LABELS[int(rng.integers(len(LABELS)))], "speaker": f"spk{speaker:05d}",
            "gender": "female" if speaker % 2 else "male", "fold": f"f{speaker % N_FOLDS}",
            "duration": round(float(rng.uniform(0.5, 1.5)), 4)}


def write_audio(path: Path, row: dict[str, Any], i: int) -> None:
    """A tone whose pitch depends on the label, plus noise, as 16-bit PCM."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(10_000_000 + i)
    n = round(row["duration"] * SAMPLE_RATE)
    pitch = 150.0 * (1 + LABELS.index(row["label"])) * float(rng.uniform(0.9, 1.1))
    t = np.arange(n) / SAMPLE_RATE
    wave = 0.3 * np.sin(2 * np.pi * pitch * t) + 0.05 * rng.standard_normal(n)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}")
    sf.write(tmp, (wave * 32767).astype(np.int16), SAMPLE_RATE, subtype="PCM_16",
             format=path.suffix[1:].upper())
    os.replace(tmp, path)


def make_corpus(folder: Path, sizes: Sequence[int]) -> float:
    """Audio for ``max(sizes)`` utterances (files already there are kept) and one manifest per
    size; returns the seconds spent writing audio."""
    start = time.perf_counter()
    rows = [utterance(i) for i in range(max(sizes))]
    for i, row in enumerate(rows):
        path = folder / row["path"]
        if not path.is_file():
            write_audio(path, row, i)
    seconds = time.perf_counter() - start
    for n in sizes:
        manifest = folder / f"manifest-{n}.csv"
        if not manifest.is_file():
            tmp = folder / f".manifest-{n}.csv"
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows[:n])
            os.replace(tmp, manifest)
    return seconds


def make_model(folder: Path) -> Path:
    if not (folder / "config.json").is_file():
        from serbench.testing import tiny_transformers_model

        tiny_transformers_model("wavlm", folder)
    return folder


# ------------------------------------------------------------------------------------ steps


class Setting:
    """One size's corpus, model and folders, and the sweep's shape."""

    def __init__(self, work: Path, size: int, folds: int, seeds: int) -> None:
        self.manifest = work / "corpus" / f"manifest-{size}.csv"
        self.upstream = f"hf:{work / 'model'}"
        self.state = work / "sizes" / str(size)
        self.results = self.state / "results"
        self.folds, self.seeds = folds, seeds

    def data(self) -> Any:
        from serbench.data.view import load_dataset
        from serbench.registry import collect

        return load_dataset(collect(), "manifest", self.manifest, None, {})

    def plan(self, data: Any, folds: int, seeds: int) -> Any:
        from serbench.registry import collect
        from serbench.run.planning import make_plan
        from serbench.store import Store

        return make_plan(collect(), methods=list(METHODS), upstreams=[self.upstream],
                         dataset="manifest", data_root=self.manifest, budget="smoke",
                         seeds=seeds, folds=list(data.folds)[:folds], data=data,
                         store=Store(self.results))

    def condition(self, method: str) -> str:
        from serbench.judge.names import format_value

        return f"{method}/{format_value(self.upstream)}"


def prepare(step: str, s: Setting) -> Callable[[], Any]:
    """Everything a step needs, loaded; returns the step itself (what is timed)."""
    import serbench.api as sb

    if step == "load (parse)":
        shutil.rmtree(s.state / "cache" / "manifests", ignore_errors=True)
        return s.data
    if step == "load (cached)":
        return s.data
    data = s.data()
    if step.startswith("plan"):
        return lambda: s.plan(data, N_FOLDS, PLAN_SEEDS)
    if step == "fill":
        from serbench.run.execution import prepare_features

        plan = s.plan(data, s.folds, s.seeds)
        return lambda: prepare_features(plan, plan.todo(), "cpu", quiet=True)
    if step == "sweep":
        from serbench.run.executors import make_executor
        from serbench.store import Store

        plan = s.plan(data, s.folds, s.seeds)
        executor = make_executor("local", 1)
        return lambda: check_outcomes(executor.run([plan], Store(s.results), device="cpu",
                                                   quiet=True))
    if step == "leaderboard":
        shutil.rmtree(s.results / ".cache", ignore_errors=True)  # predictions parsed here
        return lambda: sb.leaderboard(s.results)
    if step == "compare":
        return lambda: sb.compare(s.condition("linear"), s.condition("mlp"), results=s.results)
    raise ValueError(step)


STEPS = ("load (parse)", "load (cached)", "plan (hash audio)", "plan (cached)", "fill", "sweep",
         "leaderboard", "compare")


def check_outcomes(outcomes: Sequence[dict[str, Any]]) -> None:
    bad = [o for o in outcomes if o["status"] != "ok"]
    if bad:
        raise RuntimeError(f"{len(bad)} runs failed, first: {bad[0].get('error')}")


# ------------------------------------------------------------------------------------ memory


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


class AnonPeak:
    """The highest anonymous resident set (``RssAnon``: heap, not mapped files) seen by polling
    every 10 ms: a memory-mapped cache file read by a run counts in VmHWM but is page cache."""

    def __init__(self) -> None:
        import threading

        self.peak = _status_kb("RssAnon")
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while not self.done.wait(0.01):
            self.peak = max(self.peak, _status_kb("RssAnon"))

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        return max(self.peak, _status_kb("RssAnon"))


def measure(step: Callable[[], Any]) -> dict[str, float]:
    """Seconds, and resident memory gained at the peak, of ``step()`` in this process."""
    import gc

    gc.collect()
    before, anon_before = _status_kb("VmRSS"), _status_kb("RssAnon")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident set
    anon = AnonPeak()
    start = time.perf_counter()
    step()
    seconds = time.perf_counter() - start
    peak, anon_peak = _status_kb("VmHWM"), anon.stop()
    return {"seconds": seconds, "step_mb": max(peak - before, 0) / 1024, "peak_mb": peak / 1024,
            "anon_mb": max(anon_peak - anon_before, 0) / 1024}


def in_child(step: str, setting: Setting) -> dict[str, float]:
    """Run one step in a forked process and return its measurements (raises its error)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: set up, measure, report, exit without running the parent's code
        os.close(read)
        code = 0
        try:
            import torch

            torch.set_num_threads(1)  # the runs train on one thread; the fill has its own
            os.environ["SERBENCH_CACHE"] = str(setting.state / "cache")
            out: dict[str, Any] = measure(prepare(step, setting))
        except BaseException:
            out, code = {"error": traceback.format_exc()}, 1
        with os.fdopen(write, "w") as pipe:
            pipe.write(json.dumps(out))
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    result = json.loads(text or '{"error": "the step\'s process died"}')
    if "error" in result:
        raise RuntimeError(f"step {step!r}: {result['error']}")
    return result


# ------------------------------------------------------------------------------------ table


def slope(sizes: Sequence[int], values: Sequence[float]) -> float:
    """Least-squares slope of log(value) against log(size)."""
    xs = [math.log(n) for n in sizes]
    ys = [math.log(max(v, 1e-9)) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def table(sizes: Sequence[int], results: dict[str, list[dict[str, float]]]) -> str:
    """Markdown: seconds per size and their exponent, then the memory each step gained
    (resident, with the anonymous part in brackets) and the exponents of both."""
    def size(n: int) -> str:
        return f"{n // 1000}k" if n % 1000 == 0 else str(n)

    head = ["step", *(f"{size(n)} s" for n in sizes), "time exp",
            *(f"{size(n)} MB" for n in sizes), "mem exp", "anon exp"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for step, rows in results.items():
        seconds = [r["seconds"] for r in rows]
        t_exp = slope(sizes, seconds)
        exps = [slope(sizes, [max(r[k], 1.0) for r in rows]) for k in ("step_mb", "anon_mb")]
        cells = [step, *(f"{x:.3g}" for x in seconds),
                 f"{t_exp:.2f}" + (" (!)" if t_exp > FLAGGED else ""),
                 *(f"{r['step_mb']:.0f} ({r['anon_mb']:.0f})" for r in rows),
                 *(f"{x:.2f}" for x in exps)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,2000,4000",
                        help="utterance counts, comma-separated (the full table: "
                        "1000,5000,20000,50000)")
    parser.add_argument("--workdir", default=None,
                        help="where the corpus, model, caches and results go; reused by later "
                        "invocations (default: a temporary folder, removed afterwards)")
    parser.add_argument("--folds", type=int, default=2, help="folds of the sweep (of 5)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds of the sweep")
    parser.add_argument("--json", default=None, help="also write the measurements here")
    args = parser.parse_args(argv)
    sizes = sorted({int(x) for x in args.sizes.split(",")})
    if len(sizes) < 2 or sizes[0] < PER_SPEAKER * N_FOLDS:
        parser.error(f"--sizes needs two sizes or more, each at least {PER_SPEAKER * N_FOLDS} "
                     "(a speaker per fold)")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("SERBENCH_FILL_THREADS", "1")
    if args.workdir:
        run(args, sizes, Path(args.workdir).expanduser())
    else:
        with tempfile.TemporaryDirectory(prefix="serbench-scale-") as tmp:
            run(args, sizes, Path(tmp))


def run(args: argparse.Namespace, sizes: Sequence[int], work: Path) -> None:
    # everything the steps use, imported before the first fork (torch runs no op here): a
    # module a step imports on first use is a fixed cost of seconds, not what is measured
    import pandas  # noqa: F401
    import scipy.optimize  # noqa: F401
    import scipy.stats  # noqa: F401
    import serbench_baselines.probes  # noqa: F401
    import serbench_datasets.manifest  # noqa: F401
    import serbench_upstreams.hf_audio  # noqa: F401
    import torch._dynamo  # noqa: F401 - the first AdamW imports it
    from transformers import AutoFeatureExtractor, AutoModel, WavLMModel  # noqa: F401

    import serbench.api
    import serbench.judge.compare
    import serbench.judge.ranking
    import serbench.report.leaderboard
    import serbench.run.execution
    import serbench.run.executors
    import serbench.run.training  # noqa: F401
    from serbench.registry import collect

    collect()  # plugins discovered and imported

    work.mkdir(parents=True, exist_ok=True)
    audio_seconds = make_corpus(work / "corpus", sizes)
    print(f"corpus: {max(sizes)} utterances in {work / 'corpus'} ({audio_seconds:.1f} s writing "
          "audio)", flush=True)
    results: dict[str, list[dict[str, float]]] = {step: [] for step in STEPS}
    for n in sizes:
        setting = Setting(work, n, args.folds, args.seeds)
        shutil.rmtree(setting.state, ignore_errors=True)  # caches and results start empty
        if n == sizes[0]:
            in_child_model(work)
        for step in STEPS:
            results[step].append(in_child(step, setting))
            r = results[step][-1]
            print(f"{n} utterances, {step}: {r['seconds']:.3f} s, +{r['step_mb']:.0f} MB "
                  f"(+{r['anon_mb']:.0f} MB anonymous; peak {r['peak_mb']:.0f} MB)", flush=True)
    print(f"\nsweep: {' and '.join(METHODS)} x {args.folds} folds x {args.seeds} seeds, budget "
          f"smoke; plan: {len(METHODS)} methods x {N_FOLDS} folds x {PLAN_SEEDS} seeds; "
          f"threads: SERBENCH_FILL_THREADS={os.environ['SERBENCH_FILL_THREADS']}\n")
    print(table(sizes, results))
    if args.json:
        Path(args.json).write_text(json.dumps({"sizes": sizes, "steps": results}, indent=1))


def in_child_model(work: Path) -> None:
    """The tiny model, saved by a child (the parent runs no torch op before it forks)."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            make_model(work / "model")
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if status:
        sys.exit("scale: could not save the tiny model")


if __name__ == "__main__":
    main()
