"""Errors that every run of a sweep would meet are found once, before the first run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

WAVLM_LARGE = "c1423ed94bb01d80a3f5ce5bc39f6026a0f4828c"


def serbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "serbench.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_weights_missing_offline_fail_once_and_store_nothing(data_root: Path,
                                                             tmp_path: Path) -> None:
    results = tmp_path / "results"
    out = serbench("run", "--method", "sl_gemo", "--upstream", "wavlm_large", "--dataset",
                   "emodb", "--data-root", str(data_root), "--results", str(results))
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.count("\n") == 1, out.stderr  # once, not once per fold
    assert out.stderr.startswith("serbench: error: model 'microsoft/wavlm-large' is not in the "
                                 "Hugging Face cache")
    assert f"`hf download microsoft/wavlm-large --revision {WAVLM_LARGE}`" in out.stderr
    assert not (results / "runs").exists()  # no failed run stored


def _installed_hub(folder: Path, version: str, scripts: list[str]) -> Path:
    """A huggingface_hub distribution's metadata (first on sys.path) with these scripts."""
    info = folder / f"huggingface_hub-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: huggingface_hub\n"
                                   f"Version: {version}\n")
    lines = "".join(f"{s} = huggingface_hub.commands:main\n" for s in scripts)
    (info / "entry_points.txt").write_text(f"[console_scripts]\n{lines}")
    return folder


@pytest.mark.parametrize("version, scripts, command", [
    ("0.20.3", ["huggingface-cli"], "huggingface-cli download org/model --revision abc"),
    ("0.34.0", ["huggingface-cli", "hf"], "hf download org/model --revision abc"),
    ("1.1.0", ["hf", "tiny-agents"], "hf download org/model --revision abc"),
])
def test_the_download_hint_matches_the_installed_hub_client(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str, scripts: list[str],
        command: str) -> None:
    from serbench_upstreams.hub import download_command

    monkeypatch.syspath_prepend(str(_installed_hub(tmp_path, version, scripts)))
    assert download_command("org/model", "abc") == command


def test_a_cache_that_would_not_fit_is_refused_before_any_compute(data_root: Path, tmp_path: Path,
                                                                   monkeypatch) -> None:
    cache, results = tmp_path / "cache", tmp_path / "results"
    monkeypatch.setenv("SERBENCH_CACHE", str(cache))
    monkeypatch.setenv("SERBENCH_CACHE_FREE_BYTES", "1000000")
    out = serbench("run", "--method", "mlp", "--upstream", "fbank", "--dataset", "emodb",
                   "--data-root", str(data_root), "--budget", "smoke", "--seeds", "1",
                   "--folds", "03", "--results", str(results))
    assert out.returncode == 2
    # EmoDB's 535 files: 1,490 s × 100 frames/s × 80 log-mel bands × 2 bytes of frames (mlp
    # reads frames), plus 535 × (80 × 8 + 16) bytes of pooled statistics and index
    assert out.stderr == (
        f"serbench: error: the feature cache needs about 24.1 MB (fbank × emodb 24.1 MB) but "
        f"{cache} has 1.0 MB free: point SERBENCH_CACHE at a larger disk, free some space "
        "(serbench cache ls / clear), run fewer upstreams or datasets at a time, or store fewer "
        "frames (methods with pooled inputs store none; --option layer=N stores one layer's)\n")
    assert not (results / "runs").exists() and not (cache / "features").exists()


def test_dry_run_prints_the_cache_and_compute_estimate(data_root: Path, tmp_path: Path,
                                                       monkeypatch) -> None:
    monkeypatch.setenv("SERBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SERBENCH_CACHE_FREE_BYTES", "5000000000")
    out = serbench("run", "--method", "linear", "--upstream", "fbank,egemaps", "--dataset",
                   "emodb", "--data-root", str(data_root), "--dry-run")
    assert out.returncode == 0, out.stderr
    tail = out.stdout.splitlines()[-4:]
    assert tail[0].startswith("estimate: to run: 60 runs; ")  # 2 upstreams × 10 folds × 3 seeds
    # linear reads pooled inputs: no frames, only 535 × (80 or 88 dims × 8 + 16) bytes
    assert tail[0].endswith("feature cache 736.2 KB in 2 entries")
    assert tail[1:] == ["  cache entry fbank × emodb: about 351.0 KB to fill",
                        "  cache entry egemaps × emodb: about 385.2 KB to fill",
                        "  736.2 KB to fill, 5.0 GB free where $SERBENCH_CACHE lives"]
