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
