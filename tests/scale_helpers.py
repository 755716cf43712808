"""Shared by the scale and reliability tests: a warm fbank cache, the CLI in a subprocess, digests.

The fbank features of EmoDB are computed once per session into one folder that every test of these
modules points ``SERBENCH_CACHE`` at (the cache is built for sharing: entries appear complete or not
at all), so only the crash test pays for a cold cache.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# the sweep these tests run: the cheapest real cell (fbank + linear probe, one seed, smoke budget)
SWEEP = ["--method", "linear", "--upstream", "fbank", "--dataset", "emodb", "--seeds", "1",
         "--budget", "smoke", "--device", "cpu"]


def apart_budget(folder: Path) -> list[str]:
    """Arguments for ``smoke`` with a device-second limit that could bind (40 steps at the
    estimator's 0.02 s are 0.8 s, not twice within 1.5 s): the runs train one by one, not as a
    group (serbench.run.grouped), so a sweep stores them one at a time and a kill can land
    between two."""
    path = folder / "budgets.yaml"
    path.write_text("apart:\n  base: smoke\n  max_device_seconds: 1.5\n")
    return ["--budgets", str(path), "--budget", "apart"]


def fill_fbank_cache(data_root: Path) -> None:
    """Compute EmoDB's fbank cache entry into ``$SERBENCH_CACHE`` (a no-op when it is there)."""
    import torch

    from serbench.data.features import cached_features
    from serbench.data.view import load_dataset
    from serbench.registry import collect

    comps = collect()
    data = load_dataset(comps, "emodb", data_root, None, {})
    cached_features(comps.upstreams.get("fbank"), "emodb", data.root, data.utterances,
                    torch.device("cpu"), need_frames=False, quiet=True)


@pytest.fixture
def warm_cache(data_root: Path, tmp_path_factory: pytest.TempPathFactory,
               monkeypatch: pytest.MonkeyPatch) -> Path:
    """``SERBENCH_CACHE`` set to the session's shared cache, with EmoDB's fbank entry filled."""
    cache = tmp_path_factory.getbasetemp() / "shared-fbank-cache"
    monkeypatch.setenv("SERBENCH_CACHE", str(cache))
    fill_fbank_cache(data_root)
    return cache


def serbench(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m serbench ARGS`` in a fresh process, with this process's environment."""
    return subprocess.run([sys.executable, "-m", "serbench", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})},
                          cwd=cwd or REPO)


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """The same, without waiting (for tests that kill it)."""
    return subprocess.Popen([sys.executable, "-m", "serbench", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
                            cwd=REPO)


def digest_tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path → sha256), for byte-for-byte comparisons."""
    out = {}
    if root.exists():
        for path in sorted(root.rglob("*")):
            if path.is_file():
                out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def complete_runs(results: Path) -> list[str]:
    """Run folders renamed into place (temporary ``.tmp-*`` folders excluded)."""
    runs = results / "runs"
    if not runs.is_dir():
        return []
    return sorted(p.name for p in runs.iterdir()
                  if not p.name.startswith(".") and (p / "run.json").is_file())
