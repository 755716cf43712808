"""Seeded k-means in torch: k-means++ initialisation, Lloyd iterations, deterministic for a seed.

Written here rather than taken from scikit-learn so that it runs on the model's device, inside the
metered preparation step, on frames that never leave torch. ``Lloyd`` advances one iteration at a
time, so the caller can interleave several scales and stop them all when its time is spent.
"""

from __future__ import annotations

from typing import Any

import torch

from serbench import ConfigError

CHUNK = 8192  # rows per distance block: bounds memory at CHUNK × K floats
TOLERANCE = 1e-3  # converged once at most this share of the points changes cluster (0.1 %)


def assign(x: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the nearest centroid of every row of ``x`` and its squared distance."""
    labels, dists = [], []
    c_sq = (centroids * centroids).sum(1)
    for start in range(0, x.shape[0], CHUNK):
        block = x[start : start + CHUNK]
        d = (block * block).sum(1, keepdim=True) - 2.0 * block @ centroids.T + c_sq[None, :]
        best, idx = d.min(dim=1)
        labels.append(idx)
        dists.append(best.clamp_min(0.0))
    return torch.cat(labels), torch.cat(dists)


def kmeans_pp(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++: each next centre drawn with probability proportional to D², the squared distance
    to the nearest centre chosen so far (Arthur & Vassilvitskii, 2007)."""
    n = x.shape[0]
    x_sq = (x * x).sum(1)

    def sq_dist(i: int) -> torch.Tensor:
        return (x_sq - 2.0 * (x @ x[i]) + x_sq[i]).clamp_min(0.0)

    first = int(torch.randint(n, (1,), generator=generator).item())
    centres = [first]
    nearest = sq_dist(first)
    for _ in range(1, k):
        total = float(nearest.sum())
        if total <= 0.0:  # every point already sits on a centre: take any
            idx = int(torch.randint(n, (1,), generator=generator).item())
        else:
            idx = int(torch.multinomial(nearest.double().cpu() / total, 1,
                                        generator=generator).item())
        centres.append(idx)
        nearest = torch.minimum(nearest, sq_dist(idx))
    return x[centres].clone()


class Lloyd:
    """k-means of ``x (N, D)`` at one ``k``: k-means++ on construction, then ``step()`` per Lloyd
    iteration until ``converged`` (at most ``tol`` of the points changed cluster).

    A cluster left empty by an update is re-seeded with the points farthest from their centroids,
    so all ``k`` labels stay in use on real data; an iteration that re-seeds never counts as
    converged. Each iteration's result is stored in one assignment, so an interrupted ``step``
    leaves the previous iteration intact.
    """

    def __init__(self, x: torch.Tensor, k: int, seed: int, tol: float = TOLERANCE) -> None:
        if x.ndim != 2 or x.shape[0] < k:
            raise ConfigError(f"k-means with K={k} needs at least {k} frames, got {x.shape[0]}; "
                              "lower the K values or give the clustering more frames")
        self.x, self.k, self.tol = x.float(), k, tol
        centroids = kmeans_pp(self.x, k, torch.Generator().manual_seed(int(seed)))
        labels, dists = assign(self.x, centroids)
        self.state = (centroids, labels, dists, 1.0, 0)  # ..., share moved, iterations

    @property
    def centroids(self) -> torch.Tensor:
        return self.state[0]

    @property
    def labels(self) -> torch.Tensor:
        return self.state[1]

    @property
    def iterations(self) -> int:
        return self.state[4]

    @property
    def moved(self) -> float:
        """Share of the points that changed cluster in the last iteration (1 before any)."""
        return self.state[3]

    @property
    def converged(self) -> bool:
        return self.iterations > 0 and self.moved <= self.tol

    @property
    def inertia(self) -> float:
        """Sum of squared distances of the points to their centroids."""
        return float(self.state[2].double().sum())

    def step(self) -> None:
        centroids, labels, dists, _, iterations = self.state
        x, k = self.x, self.k
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k)
        empty = (counts == 0).nonzero().flatten()
        centroids = torch.where(counts[:, None] > 0,
                                sums / counts.clamp_min(1)[:, None].to(x.dtype), centroids)
        if len(empty):
            far = torch.argsort(dists, descending=True, stable=True)[: len(empty)]
            centroids[empty] = x[far]
        new_labels, new_dists = assign(x, centroids)
        moved = int((new_labels != labels).sum()) / len(labels)
        if len(empty):
            moved = max(moved, 2 * self.tol)  # re-seeded: not yet a fixed point
        self.state = (centroids, new_labels, new_dists, moved, iterations + 1)

    def summary(self) -> dict[str, Any]:
        """What the run records of this scale."""
        return {"k": self.k, "iterations": self.iterations, "inertia": round(self.inertia, 4),
                "moved": round(self.moved, 6), "converged": self.converged}

