"""Length-bucketed batches on real EmoDB durations: little padding, each item once, on budget."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from serbench.data.batching import bucket_batches, padding_fraction
from serbench.data.view import load_dataset
from serbench.registry import collect
from serbench.run.budgets import PRESETS


@pytest.fixture(scope="module")
def durations(data_root: Path) -> list[float]:
    data = load_dataset(collect(), "emodb", data_root, None, {})
    return [u.duration for u in data.utterances]


def test_emodb_durations(durations: list[float]) -> None:
    assert len(durations) == 535
    assert sum(durations) == pytest.approx(1487.09, abs=0.01)


@pytest.mark.parametrize("budget", ["smoke", "probe", "finetune"])
def test_buckets_pad_under_ten_percent_where_random_batches_of_8_pad_a_third(
        durations: list[float], budget: str) -> None:
    seconds = PRESETS[budget].batch_seconds
    for seed in (None, 0, 1, 2):
        assert padding_fraction(durations, bucket_batches(durations, seconds, seed=seed)) < 0.10
    order = list(range(len(durations)))
    random.Random(0).shuffle(order)
    random8 = [order[i : i + 8] for i in range(0, len(order), 8)]
    assert 0.33 < padding_fraction(durations, random8) < 0.42


@pytest.mark.parametrize("seed", [None, 0, 7])
def test_every_item_once_and_every_batch_within_its_seconds(durations: list[float],
                                                            seed: int | None) -> None:
    batches = bucket_batches(durations, 90.0, seed=seed)
    assert sorted(i for b in batches for i in b) == list(range(535))
    assert all(len(b) * max(durations[i] for i in b) <= 90.0 for b in batches)
    # greedy: adding the next item of the sorted order would have overflowed the budget
    assert len(batches) == 18 if seed is None else 17 <= len(batches) <= 19


def test_without_seed_sorted_by_length_with_seed_shuffled_and_reproducible(
        durations: list[float]) -> None:
    plain = bucket_batches(durations, 60.0)
    flat = [i for b in plain for i in b]
    assert [durations[i] for i in flat] == sorted(durations)
    assert bucket_batches(durations, 60.0, seed=3) == bucket_batches(durations, 60.0, seed=3)
    assert bucket_batches(durations, 60.0, seed=3) != bucket_batches(durations, 60.0, seed=4)
    assert bucket_batches(durations, 60.0, seed=3) != plain


def test_long_items_alone_and_item_cap() -> None:
    assert bucket_batches([1.0, 12.0, 2.0, 2.0], 10.0) == [[0, 2, 3], [1]]
    assert bucket_batches([1.0] * 7, 100.0, max_items=3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert bucket_batches([], 10.0) == []


def test_padding_fraction_by_hand() -> None:
    # batches [1, 2] and [3, 4] pad to 2 x 2 + 2 x 4 = 12 positions holding 10
    assert padding_fraction([1, 2, 3, 4], [[0, 1], [2, 3]]) == pytest.approx(1 / 6)
    assert padding_fraction([5, 5], [[0, 1]]) == 0.0
    assert padding_fraction([], []) == 0.0
