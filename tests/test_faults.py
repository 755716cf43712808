"""Nothing hangs, nothing is orphaned: kills and Ctrl-C of real ``--workers 2`` sweeps.

Three kills of the fault campaign (``benchmarks/faults.py``) on its small real workload: the
driver SIGKILLed mid-sweep, Ctrl-C pressed twice in the sweep's terminal, a worker SIGKILLed.
Each must leave no process of the sweep alive (the fork server, the resource tracker and the
workers included), change no stored run, and the same command must then finish the sweep with
every run stored once. A Ctrl-C during an openSMILE cache fill is an interrupt too, never a failed
run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from scale_helpers import REPO, complete_runs, start

from serbench.registry import collect

sys.path.insert(0, str(REPO / "benchmarks"))
import faults  # noqa: E402  (the campaign script: its kills, workload and checks)


@pytest.fixture(scope="module")
def workload(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> faults.Workload:
    """The campaign's corpus and sweep (6 runs), with runs of about 1 s on an idle machine: a
    kill 0.3 s after a run starts must find it running."""
    return faults.Workload(tmp_path_factory.mktemp("faults"), data_root, steps=2000)


@pytest.mark.slow
def test_three_kills_of_the_campaign_leave_no_process_and_lose_no_run(
        workload: faults.Workload, tmp_path: Path) -> None:
    results = tmp_path / "results"
    worker_died = ("serbench: error: a worker process died (killed or out of memory); runs "
                   "stored so far are kept: run the same command again to finish")

    # 1. the driver SIGKILLed once runs are stored: its workers die with it
    killed = faults.attempt(workload, results, faults.Kill("driver", "SIGKILL", "stored", 0))
    assert killed.landed and killed.problems == [], killed.stderr  # no survivor, right exit
    assert killed.returncode == -signal.SIGKILL
    assert 1 <= killed.stored[1] < 6, killed.stderr

    # 2. Ctrl-C pressed twice in the sweep's terminal: one line, exit 130 within seconds
    ctrl_c = faults.attempt(workload, results, faults.Kill("ctrl-c", "SIGINT", "running", 0.3,
                                                           repeat=2))
    assert ctrl_c.landed and ctrl_c.problems == [], ctrl_c.stderr
    left = 6 - ctrl_c.stored[1]
    assert ctrl_c.returncode == 130 and ctrl_c.exit_seconds < 10 and left > 0
    lines = ctrl_c.stderr.splitlines()
    assert lines[-1] == (f"serbench: interrupted: stopped the sweep with {left} of "
                         f"{6 - ctrl_c.stored[0]} runs unfinished; finished runs are stored: run "
                         "the same command again to finish the rest")
    assert sum("interrupted" in line for line in lines) == 1

    # 3. a worker SIGKILLed: the driver stops the sweep with one line, the other worker goes too
    worker = faults.attempt(workload, results, faults.Kill("worker", "SIGKILL", "running", 0.3))
    assert worker.landed and worker.problems == [], worker.stderr
    assert worker.returncode == 2 and worker.stderr.splitlines()[-1] == worker_died
    assert not any("Traceback" in a.stderr for a in (killed, ctrl_c, worker))

    # the same command finishes the sweep: every planned run once, the earlier ones untouched
    assert worker.stored[1] < 6
    assert faults.resume(workload, results) == []
    assert len(complete_runs(results)) == 6


def test_ctrl_c_while_the_fork_server_starts(workload: faults.Workload, tmp_path: Path) -> None:
    # the fork server imports torch for seconds before it ignores SIGINT: a Ctrl-C then used to
    # kill it with a traceback of its own
    done = faults.attempt(workload, tmp_path / "results",
                          faults.Kill("ctrl-c", "SIGINT", "forkserver", 0.3))
    assert done.landed and done.problems == [], done.stderr
    assert done.returncode == 130 and done.stderr.splitlines()[-1] == "serbench: interrupted"
    assert "Traceback" not in done.stderr and done.stored == (0, 0)


def _long_corpus(emodb_root: Path, folder: Path) -> Path:
    """Six 60 s recordings (EmoDB files of one speaker end to end), 3 speakers: openSMILE spends
    its time inside its C library, where a Ctrl-C used to be lost."""
    folder.mkdir()
    lines = ["path,label,speaker"]
    for spk in ("03", "08", "09"):
        wavs = sorted((emodb_root / "wav").glob(f"{spk}*.wav"))
        for i, label in enumerate(("angry", "sad")):
            audio = np.concatenate([sf.read(w, dtype="float32")[0] for w in wavs[i * 16:]])
            sf.write(folder / f"{spk}-{i}.wav", audio[: 60 * 16000], 16000)
            lines.append(f"{spk}-{i}.wav,{label},{spk}")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    return folder / "manifest.csv"


@pytest.mark.slow
def test_ctrl_c_during_an_opensmile_fill_stores_nothing(emodb_root: Path, tmp_path: Path) -> None:
    # openSMILE's ctypes callback used to swallow the KeyboardInterrupt: the utterance's features
    # came out NaN, and with --workers the sweep went on (the workers filled the cache again)
    cache = Path(os.environ["SERBENCH_CACHE"]) / "features" / "egemaps"
    results = tmp_path / "results"
    proc = start("run", "--method", "linear", "--upstream", "egemaps", "--dataset", "manifest",
                 "--data-root", str(_long_corpus(emodb_root, tmp_path / "corpus")), "--device",
                 "cpu", "--results", str(results), "--workers", "2")
    err = faults.Lines(proc.stderr)
    err.wait_for(r"features egemaps on manifest: .* [1-5]/6 ", proc, timeout=120)
    assert proc.poll() is None, "\n".join(err.lines)
    time.sleep(0.7)  # the first recording (2 s or more) is inside openSMILE's C code now
    proc.send_signal(signal.SIGINT)
    out = proc.stdout.read()
    assert proc.wait(timeout=30) == 130, "\n".join(err.lines)
    err.thread.join(timeout=10)
    assert err.lines[-1] == "serbench: interrupted"
    assert "FAILED" not in out and not any("non-finite" in e or "Traceback" in e for e in err.lines)
    assert complete_runs(results) == []
    assert list(cache.glob("*/meta.json")) == [] and list(cache.glob(".tmp-*")) == []


def test_opensmile_delivers_a_ctrl_c_it_receives(emodb_root: Path) -> None:
    module = collect().upstreams.get("egemaps").loader("cpu")
    audio, _ = sf.read(emodb_root / "wav" / "03a01Nc.wav", dtype="float32")
    wave = torch.from_numpy(np.tile(audio, 12))  # 19 s: openSMILE runs for a while
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        module(wave[None], torch.tensor([len(wave)]))
    # and without one the same call gives finite features
    (feats,), _ = module(wave[None], torch.tensor([len(wave)]))
    assert torch.isfinite(feats).all()


def test_the_campaign_finds_a_survivor() -> None:
    # the orphan check itself: a marked process is found until it is gone
    mark = "selftest"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                             env={**os.environ, faults.MARK: mark})
    try:
        assert [s.split()[0] for s in faults.survivors(mark)] == [str(child.pid)]
    finally:
        child.kill()
        child.wait()
    assert faults.wait_gone(mark, 2) == []
