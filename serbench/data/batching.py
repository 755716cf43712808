"""Length-bucketed dynamic batches: utterances of similar length, a fixed amount of audio each.

Random batches of fixed size pad heavily (about a third of the frames on EmoDB); sorting by length
and cutting where the padded batch would exceed ``batch_seconds`` keeps padding to a few percent
while every batch carries about the same amount of audio.
"""

from __future__ import annotations

import random
from typing import Sequence


def bucket_batches(
    durations: Sequence[float],
    batch_seconds: float,
    seed: int | None = None,
    max_items: int | None = None,
) -> list[list[int]]:
    """Split item indices into batches whose padded length ``n × max(duration)`` fits the budget.

    With a ``seed`` the order is shuffled, but only among items of similar length (a random
    tie-break inside a sort) and then across batches, so padding stays low; without one the
    order is deterministic (for inference). An item longer than ``batch_seconds`` is batched alone.
    """
    rng = random.Random(seed)
    if seed is None:
        order = sorted(range(len(durations)), key=lambda i: (durations[i], i))
    else:
        # jitter by up to 5 % of the length so each epoch groups slightly different neighbours
        order = sorted(range(len(durations)),
                       key=lambda i: durations[i] * (1.0 + 0.05 * rng.random()))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0.0
    for i in order:
        d = max(float(durations[i]), 1e-3)
        new_longest = max(longest, d)
        too_long = new_longest * (len(current) + 1) > batch_seconds
        too_many = max_items is not None and len(current) >= max_items
        if current and (too_long or too_many):
            batches.append(current)
            current, new_longest = [], d
        current.append(i)
        longest = new_longest
    if current:
        batches.append(current)
    if seed is not None:
        rng.shuffle(batches)
    return batches


def padding_fraction(lengths: Sequence[float], batches: Sequence[Sequence[int]]) -> float:
    """Share of padded positions over all batches (0 = no padding)."""
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches if b)
    real = sum(lengths[i] for b in batches for i in b)
    return 0.0 if padded == 0 else 1.0 - real / padded
