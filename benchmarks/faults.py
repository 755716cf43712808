"""Fault campaign: kill a ``--workers 2`` sweep at random moments; nothing is lost or left behind.

    python benchmarks/faults.py --data-root ../shared/data               # 24 kills, seed 0
    python benchmarks/faults.py --data-root ../shared/data --kills 40 --seed 3

The workload is small and real: 18 EmoDB recordings (3 speakers × 6) as a manifest corpus, its
3 leave-one-speaker-out folds × 2 seeds = 6 runs of ``linear`` on ``fbank`` under a 1000-step
budget (about 2 s a run).
Each kill starts the sweep again on the same results folder (so it resumes what the previous
attempts stored), waits for a random moment (from the start, which covers planning and the fork
server's start, or from the first run's start), then signals a random target the way a user or
the machine would:

- ``driver``: SIGKILL or SIGTERM (killed: -9 / -15), or SIGINT (exit 130, one line; exit 0 if it
  comes as the finished sweep exits);
- ``worker``: SIGKILL or SIGTERM (the driver stops with one line, exit 2), or SIGINT (ignored:
  the driver decides what a Ctrl-C stops, so the sweep finishes, exit 0);
- ``ctrl-c``: SIGINT to the sweep's whole process group, once to three times, as a terminal sends
  it (exit 130 within seconds, one line, no traceback).

After each attempt: no process of the sweep (driver, fork server, resource tracker, workers: all
carry a marker in their environment) is alive 5 s later, and every run stored before the attempt
is byte-identical. Whenever the kills have let the sweep store all its runs (the next kill then
starts a fresh results folder), and after the last kill, the same command runs once more,
uninterrupted: it must exit 0, report exactly the runs stored before as already stored and leave
them byte-identical, and leave the store whole: the planned run ids, one run folder and one index
row each, every (fold, seed) cell once, every run ``ok``. One row per kill is printed as it ends,
then a summary. ``tests/test_faults.py`` runs three of these kills.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
MARK = "SERBENCH_FAULTS_MARK"  # every process of a sweep inherits it: how survivors are found
SPEAKERS = ("03", "08", "09")
EMOTIONS = {"W": "angry", "L": "bored", "E": "disgusted", "A": "fearful", "F": "happy",
            "T": "sad", "N": "neutral"}
GRACE = 5.0  # seconds the sweep's processes get to be gone after its driver exits
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}


@dataclass(frozen=True)
class Kill:
    """One fault: ``signal`` sent to ``target`` ``delay`` seconds after ``anchor``."""

    target: str  # driver, worker or ctrl-c (SIGINT to the process group)
    signal: str  # SIGKILL, SIGTERM or SIGINT
    anchor: str  # start (the command starts), forkserver (the fork server starts), running (a run
    # starts) or stored (a run is stored)
    delay: float
    repeat: int = 1  # how many times (0.3 s apart); a user presses Ctrl-C again

    def label(self) -> str:
        times = f" x{self.repeat}" if self.repeat > 1 else ""
        return f"{self.target} {self.signal}{times} {self.anchor}+{self.delay:.1f}s"


@dataclass
class Workload:
    """The corpus, budget, cache and command of the campaign, under one scratch folder."""

    base: Path
    data_root: Path
    seeds: int = 2
    steps: int = 1000  # about 2 s a run

    @property
    def runs(self) -> int:
        return len(SPEAKERS) * self.seeds

    def __post_init__(self) -> None:
        corpus = self.base / "corpus"
        corpus.mkdir(parents=True, exist_ok=True)
        lines = ["path,label,speaker"]
        for spk in SPEAKERS:
            for wav in sorted((self.data_root / "emodb" / "wav").glob(f"{spk}*.wav"))[:6]:
                link = corpus / wav.name
                if not link.exists():
                    link.symlink_to(wav)
                lines.append(f"{wav.name},{EMOTIONS[wav.name[5]]},{spk}")
        (corpus / "manifest.csv").write_text("\n".join(lines) + "\n")
        (self.base / "budgets.yaml").write_text(
            f"faults:\n  base: smoke\n  max_steps: {self.steps}\n  eval_every: 250\n")
        self.cache = self.base / "cache"

    def command(self, results: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "serbench", "run", "--method", "linear", "--upstream",
                "fbank", "--dataset", "manifest", "--data-root",
                str(self.base / "corpus" / "manifest.csv"), "--budgets",
                str(self.base / "budgets.yaml"), "--budget", "faults", "--seeds",
                str(self.seeds), "--device", "cpu", "--results", str(results), *extra]

    def env(self, mark: str) -> dict[str, str]:
        return {**os.environ, "SERBENCH_CACHE": str(self.cache), MARK: mark,
                "OMP_NUM_THREADS": "1", "SERBENCH_FILL_THREADS": "1"}



# ------------------------------------------------------------------------------- observing


def survivors(mark: str) -> list[str]:
    """Live processes (zombies are dead) whose environment carries ``mark``."""
    needle = f"{MARK}={mark}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if needle not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:160]
        except OSError:  # gone meanwhile, or not ours
            continue
        if state != "Z":
            found.append(f"{proc.name} {state} {cmd}")
    return found


def wait_gone(mark: str, seconds: float = GRACE) -> list[str]:
    """Survivors of ``mark`` once they are all gone, or after ``seconds``."""
    deadline = time.monotonic() + seconds
    while (left := survivors(mark)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _complete(results: Path) -> list[Path]:
    """Run folders renamed into place (a writer's hidden ``.tmp-`` folders are not runs)."""
    runs = results / "runs"
    return [f for f in sorted(runs.iterdir()) if not f.name.startswith(".")
            and (f / "run.json").is_file()] if runs.is_dir() else []


def run_digests(results: Path) -> dict[str, str]:
    """One digest per complete run folder (its files' names and bytes)."""
    out = {}
    for folder in _complete(results):
        h = hashlib.sha256()
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                h.update(f"{path.relative_to(folder)}\0".encode() + path.read_bytes())
        out[folder.name] = h.hexdigest()
    return out


def store_problems(results: Path, planned: set[str]) -> list[str]:
    """What is wrong with a store that should hold every planned run exactly once."""
    problems = []
    runs = set(run_digests(results))
    if runs != planned:
        problems.append(f"stored {len(runs)} runs, {len(runs & planned)} of the {len(planned)} "
                        "planned")
    cells: dict[tuple[str, int], int] = {}
    for rid in runs:
        record = json.loads((results / "runs" / rid / "run.json").read_text())
        key = (record["spec"]["fold"], record["spec"]["seed"])
        cells[key] = cells.get(key, 0) + 1
        if record["status"] != "ok":
            problems.append(f"run {rid} is {record['status']}: {record.get('error')}")
    problems += [f"cell {k} stored {n} times" for k, n in cells.items() if n > 1]
    with sqlite3.connect(results / "serbench.db") as db:
        rows = db.execute("SELECT run_id FROM runs").fetchall()
    if sorted(r[0] for r in rows) != sorted(runs):
        problems.append(f"index holds {len(rows)} rows for {len(runs)} run folders")
    return problems


# ------------------------------------------------------------------------------- one attempt


@dataclass
class Attempt:
    kill: Kill
    landed: bool = False  # the signal was sent while the sweep ran
    returncode: int | None = None
    exit_seconds: float | None = None  # from the first signal to the driver's exit
    stored: tuple[int, int] = (0, 0)  # complete runs before, after
    problems: list[str] = field(default_factory=list)
    stderr: str = ""


class Lines:
    """A pipe's lines, collected by a thread as they come."""

    def __init__(self, pipe: object) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe: object) -> None:
        for line in pipe:  # type: ignore[attr-defined]
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, proc: subprocess.Popen[str], timeout: float) -> None:
        _wait(lambda: any(re.search(pattern, line) for line in self.lines), proc, timeout)


def _wait(ready: Callable[[], bool], proc: subprocess.Popen[str], timeout: float) -> None:
    """Until ``ready()``, the process ends or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and not ready():
        time.sleep(0.02)


def _worker_pids(lines: list[str]) -> list[int]:
    return [int(p) for p in re.findall(r"started on [^:\s]+:(\d+) ", "\n".join(lines))]


def _send(kill: Kill, proc: subprocess.Popen[str], lines: list[str], mark: str) -> bool:
    """Deliver one signal; False when its target is gone (or never came)."""
    sig = SIGNALS[kill.signal]
    if proc.poll() is not None:
        return False
    if kill.target == "driver":
        proc.send_signal(sig)
    elif kill.target == "ctrl-c":
        os.killpg(proc.pid, sig)
    else:
        live = [p for p in _worker_pids(lines) if any(s.startswith(f"{p} ")
                                                       for s in survivors(mark))]
        if not live:
            return False
        os.kill(random.choice(sorted(set(live))), sig)
    return True


def _expected(kill: Kill, landed: bool, rc: int, stderr: list[str], complete: bool) -> list[str]:
    """What the driver's exit says about the handling of this fault, as problems."""
    last = stderr[-1] if stderr else ""
    problems = [f"traceback on stderr: {last}"] if any("Traceback" in s for s in stderr) else []
    if not landed:  # the sweep ended before the moment came
        ok = rc == 0 and complete
    elif kill.target == "driver" and kill.signal != "SIGINT":
        ok = rc == -SIGNALS[kill.signal]
    elif kill.signal == "SIGINT" and kill.target in ("driver", "ctrl-c"):
        # or it came as the finished sweep exits
        ok = (rc == 130 and last.startswith("serbench: interrupted")) or (rc == 0 and complete)
    elif kill.signal == "SIGINT":  # a worker leaves Ctrl-C to the driver: the sweep goes on
        ok = rc == 0 and complete
    else:
        ok = (rc == 2 and "a worker process died" in last) or (rc == 0 and complete)
    return problems + ([] if ok else [f"exit {rc}, last line {last!r}"])


def attempt(work: Workload, results: Path, kill: Kill) -> Attempt:
    """Start the sweep on ``results``, deliver ``kill``, check what it left."""
    out = Attempt(kill)
    before = run_digests(results)
    mark = uuid.uuid4().hex
    proc = subprocess.Popen(work.command(results, "--workers", "2"), env=work.env(mark),
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    err = Lines(proc.stderr)
    try:
        if kill.anchor == "running":
            err.wait_for(r"started on ", proc, timeout=180)
        elif kill.anchor == "forkserver":
            _wait(lambda: any("multiprocessing.forkserver" in s for s in survivors(mark)), proc,
                  timeout=180)
        elif kill.anchor == "stored":
            _wait(lambda: len(_complete(results)) > len(before), proc, timeout=180)
        time.sleep(kill.delay)
        sent = None
        for i in range(kill.repeat):
            if i:
                time.sleep(0.3)
            if not _send(kill, proc, err.lines, mark):
                break
            sent = sent or time.monotonic()
        out.landed = sent is not None
        out.returncode = proc.wait(timeout=300)
        if sent:
            out.exit_seconds = time.monotonic() - sent
    except subprocess.TimeoutExpired:
        out.problems.append("the driver did not exit within 300 s")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    err.thread.join(timeout=10)
    out.stderr = "\n".join(err.lines)
    left = wait_gone(mark)
    out.problems += [f"survivor: {s}" for s in left]
    for pid in (int(s.split()[0]) for s in left):  # so that one failure does not slow the rest
        os.kill(pid, signal.SIGKILL)
    after = run_digests(results)
    out.stored = (len(before), len(after))
    out.problems += [f"stored run {rid} changed or vanished" for rid in before
                     if after.get(rid) != before[rid]]
    if out.returncode is not None:
        out.problems += _expected(kill, out.landed, out.returncode, err.lines,
                                  len(after) == work.runs)
    return out


# ------------------------------------------------------------------------------- campaign


COMBOS = [*((target, sig) for target in ("driver", "worker") for sig in SIGNALS),
          ("ctrl-c", "SIGINT")]
DELAYS = {"start": (0.5, 4.0), "forkserver": (0.0, 2.0), "running": (0.0, 2.5),
          "stored": (0.0, 1.5)}  # seconds after the anchor


def random_kills(n: int, seed: int) -> list[Kill]:
    """``n`` kills, every (target, signal) pair in turn in a random order, at random moments."""
    random.seed(seed)  # also which worker a worker kill picks
    rng = random.Random(seed)
    pairs = [COMBOS[i % len(COMBOS)] for i in range(n)]
    rng.shuffle(pairs)
    kills = []
    for target, sig in pairs:
        early = [] if target == "worker" else ["start", "forkserver"]
        anchor = rng.choice(["running", "stored", *early])
        delay = round(rng.uniform(*DELAYS[anchor]), 1)
        kills.append(Kill(target, sig, anchor, delay, rng.randint(1, 3) if sig == "SIGINT" else 1))
    return kills


def resume(work: Workload, results: Path) -> list[str]:
    """The same command once more, uninterrupted: it must finish the sweep (every run it plans
    stored once, those stored before reported as such and unchanged) and leave no process."""
    before = run_digests(results)
    mark = uuid.uuid4().hex
    done = subprocess.run(work.command(results, "--workers", "2", "--json"), env=work.env(mark),
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    problems = [] if done.returncode == 0 else [f"resume exit {done.returncode}: "
                                                 f"{done.stderr.strip()[-300:]}"]
    outcomes = {o["run_id"]: o["status"] for o in map(json.loads, done.stdout.splitlines())}
    planned = set(outcomes)
    if len(planned) != work.runs:
        problems.append(f"the sweep planned {len(planned)} runs, not {work.runs}")
    skipped = {rid for rid, status in outcomes.items() if status == "skipped"}
    if skipped != set(before):
        problems.append(f"{len(skipped)} runs reported as already stored, {len(before)} were")
    problems += [f"survivor after resume: {s}" for s in wait_gone(mark)]
    after = run_digests(results)
    problems += [f"resume changed stored run {rid}" for rid in before
                 if after.get(rid) != before[rid]]
    return problems + store_problems(results, planned)


def campaign(work: Workload, kills: list[Kill]) -> tuple[list[Attempt], list[str]]:
    """Every kill in turn on one results folder, resumed to completion (and a fresh folder
    started) whenever the kills have let it store every run, and after the last kill. A kill
    whose moment came after the sweep ended is tried again at half the delay (within twice as
    many attempts as kills in all), so that nearly every kill is delivered."""
    sweeps = 0
    attempts: list[Attempt] = []
    completions: list[str] = []
    queue = list(kills)
    while queue and len(attempts) < 2 * len(kills):
        kill = queue.pop(0)
        results = work.base / f"results-{sweeps}"
        a = attempt(work, results, kill)
        _reap()
        attempts.append(a)
        if not a.landed:
            queue.insert(0, replace(kill, delay=round(kill.delay / 2, 1)))
        print(_row(len(attempts), a), flush=True)
        if a.problems:  # what the sweep said, to see why
            print("     | " + "\n     | ".join(a.stderr.splitlines()[-12:]), flush=True)
        if len(run_digests(results)) == work.runs:
            completions += resume(work, results)
            sweeps += 1
    if attempts and len(run_digests(work.base / f"results-{sweeps}")) < work.runs:
        completions += resume(work, work.base / f"results-{sweeps}")
    _reap()
    return attempts, completions


def _adopt_orphans() -> None:
    """Make this process the sweeps' subreaper (Linux): a process orphaned by a killed driver
    becomes our child, so that it is reaped here and its CPU time counts in ``os.times()``."""
    import ctypes

    pr_set_child_subreaper = 36
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0)


def _reap() -> None:
    """Collect every exited child (no sweep command is running when this is called)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _row(i: int, a: Attempt) -> str:
    secs = f"{a.exit_seconds:5.1f}" if a.exit_seconds is not None else "    -"
    verdict = "ok" if not a.problems else "FAIL: " + "; ".join(a.problems)
    return (f"{i:3d}  {a.kill.label():34s} {'yes' if a.landed else 'no ':4s} "
            f"{str(a.returncode):>5s} {secs}  {a.stored[0]}->{a.stored[1]}  {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=os.environ.get("SERBENCH_TEST_DATA",
                                                              str(REPO.parent / "shared" / "data")),
                        help="folder holding emodb/ (default $SERBENCH_TEST_DATA, ../shared/data)")
    parser.add_argument("--kills", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    _adopt_orphans()
    # a sweep must see Ctrl-C as in a terminal, even when this runs as a background job (which
    # starts with SIGINT ignored, and ignored signals stay ignored in the processes it starts)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started, cpu = time.monotonic(), _children_cpu()
    with tempfile.TemporaryDirectory(prefix="serbench-faults-") as tmp:
        work = Workload(Path(tmp), Path(args.data_root).resolve())
        print("  #  kill                               sent  exit  secs  runs  verdict")
        attempts, final = campaign(work, random_kills(args.kills, args.seed))
    failed = [a for a in attempts if a.problems]
    landed = sum(a.landed for a in attempts)
    exits = [a.exit_seconds for a in attempts if a.exit_seconds is not None
             and (a.kill.target, a.kill.signal) != ("worker", "SIGINT")]  # that one goes on
    print(f"\n{landed} of {args.kills} kills delivered while the sweep ran ({len(attempts)} "
          f"attempts), {len(failed)} attempts with problems; slowest exit after a stopping "
          f"signal {max(exits or [0]):.1f} s")
    print("store after the final resume: " + ("complete, every run once, finished runs unchanged"
                                             if not final else "; ".join(final)))
    print(f"wall {time.monotonic() - started:.0f} s, CPU of the sweeps' processes "
          f"{_children_cpu() - cpu:.0f} s")
    return 1 if failed or final else 0


def _children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


if __name__ == "__main__":
    sys.exit(main())
