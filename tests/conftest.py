"""Shared fixtures: the real EmoDB copy and isolated results / cache folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SERBENCH_TEST_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The folder holding ``emodb/`` (read-only, never written)."""
    if not (SHARED_DATA / "emodb" / "wav").is_dir():
        pytest.fail(f"real EmoDB not found under {SHARED_DATA}; set SERBENCH_TEST_DATA")
    return SHARED_DATA


@pytest.fixture(scope="session")
def emodb_root(data_root: Path) -> Path:
    return data_root / "emodb"


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own feature cache and results folder and never touches the network."""
    base = tmp_path_factory.mktemp("serbench-home")
    monkeypatch.setenv("SERBENCH_CACHE", str(base / "cache"))
    monkeypatch.setenv("SERBENCH_RESULTS", str(base / "results"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.delenv("SERBENCH_DATA", raising=False)
    # two test workers share two cores: one intra-op thread each, in-process and in subprocesses
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("SERBENCH_FILL_THREADS", "1")


def pytest_configure(config: pytest.Config) -> None:
    import torch

    torch.set_num_threads(1)
