"""The one estimator of cache size and GPU-hours, and the GPU recipe end to end in tiny mode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from serbench.registry import collect
from serbench.run.budgets import PRESETS
from serbench.run.estimate import Cell, Corpus, cache_bytes, estimate, suite_cells

REPO = Path(__file__).resolve().parents[1]


def test_cache_size_is_the_pooled_statistics_plus_the_frames_of_the_layers_read() -> None:
    ups = collect().upstreams
    hour = Corpus("c", 3600.0, 1000, 5)
    large = ups.get("wavlm_large")
    pooled = 1000 * (25 * 1024 * 8 + 16)  # float32 mean and variance per layer, and the index
    assert cache_bytes(large, hour, ()) == pooled  # pooled inputs only: no frames
    # WavLM Large: 50 frames/s × 1024 × 2 bytes per layer whose frames are read
    assert cache_bytes(large, hour, (24,)) == pooled + 3600 * 50 * 1024 * 2
    assert cache_bytes(large, hour) == pooled + 3600 * 50 * 25 * 1024 * 2  # every layer
    assert cache_bytes(ups.get("egemaps"), hour) == 1000 * (88 * 8 + 16)  # one vector each


def test_compute_counts_one_extraction_per_corpus_and_caps_each_run() -> None:
    ups = collect().upstreams
    iemocap = Corpus("iemocap", 36000.0, 5000, 5)
    probe, finetune = PRESETS["probe"], PRESETS["finetune"]
    large = ups.get("wavlm_large")
    e = estimate([Cell("linear", large, iemocap, 15, probe, False),
                  Cell("mlp", large, iemocap, 15, probe, False, frame_layers=(3,)),
                  Cell("mlp", large, iemocap, 15, probe, False, frame_layers=(5,))],
                 large_throughput=1000.0)
    assert e.runs == 45 and len(e.cache) == 1
    assert e.cache_bytes == cache_bytes(large, iemocap, (3, 5))  # one entry, both layers
    assert e.feature_hours == pytest.approx(36000 / 1000 / 3600)  # extracted once
    assert e.train_hours == pytest.approx(45 * 1000 * 0.02 / 3600)
    tuned = estimate([Cell("sl_gemo", ups.get("wavlm_large"), iemocap, 5, finetune, True)],
                     large_throughput=1000.0)
    # 8,000 steps × 100 s of audio × 3 (forward + backward) at 1,000 s of audio per second
    assert tuned.train_hours == pytest.approx(5 * 8000 * 100 * 3 / 1000 / 3600)
    assert tuned.cache_bytes == 0 and tuned.cap_hours == pytest.approx(5 * 8)


def test_the_shipped_suites_estimate_without_their_corpora() -> None:
    cells = suite_cells(REPO / "benchmarks" / "suites" / "superb_er.yaml", collect())
    assert len(cells) == 8 and {c.runs for c in cells} == {15}  # 5 folds × 3 seeds
    seeds = suite_cells(REPO / "benchmarks" / "suites" / "seeds_iemocap.yaml", collect())
    assert sum(c.runs for c in seeds) == 225  # (6 + 1 + 2) cells × 5 folds × 5 seeds
    cross = suite_cells(REPO / "benchmarks" / "suites" / "cross_corpus.yaml", collect())
    assert {c.runs for c in cross} == {3} and len(cross) == 24


def test_the_gpu_recipe_runs_end_to_end_in_tiny_mode(tmp_path: Path) -> None:
    script = REPO / "benchmarks" / "reproduce" / "reproduce.py"
    done = subprocess.run([sys.executable, str(script), "all", "--tiny", "--work",
                           str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for step in ("bf16 autocast step: ok", "gloo DDP with one process: ok",
                 "WavLM tiny (random weights) forward:", "corpus iemocap: ",
                 "estimate (full suites, one GPU): superb_er: 120 runs;",
                 "estimate (full suites, one GPU): seeds_iemocap: 225 runs;"):
        assert step in out
    board = (tmp_path / "leaderboard.md").read_text()
    refs = board[board.index("Published references:"):]
    for value in ("35.39", "63.43", "64.92", "65.94", "67.98", "65.64", "67.62", "70.03",
                  "83.16", "81.43", "80.00", "82.00"):
        assert f"|       {value} |" in refs
    assert refs.count("differs: 5 folds vs 1") == 10  # 8 SUPERB + GMP-TL's two
    assert "<caption>Published references</caption>" in (tmp_path / "leaderboard.html").read_text()
    again = subprocess.run([sys.executable, str(script), "all", "--tiny", "--work",
                            str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "running seeds_iemocap_tiny" in again.stdout
    assert len(list((tmp_path / "results" / "runs").iterdir())) == 17  # 8 + 9, none run twice
