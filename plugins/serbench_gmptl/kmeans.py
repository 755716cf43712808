"""Seeded k-means in torch: k-means++ initialisation, Lloyd iterations, deterministic for a seed.

Written here rather than taken from scikit-learn so that it runs on the model's device, inside the
metered preparation step, on frames that never leave torch.
"""

from __future__ import annotations

import torch

from serbench import ConfigError

CHUNK = 8192  # rows per distance block: bounds memory at CHUNK × K floats


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


def kmeans(x: torch.Tensor, k: int, seed: int, iters: int = 30, tol: float = 1e-3
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(centroids (k, D), labels (N,))`` of ``x (N, D)``; the same seed gives the same result.

    Lloyd iterations stop after ``iters`` or once at most a ``tol`` share of the points changes
    cluster.

    A cluster left empty by an update is re-seeded with the points farthest from their centroids,
    so all ``k`` labels stay in use on real data.
    """
    if x.ndim != 2 or x.shape[0] < k:
        raise ConfigError(f"k-means with K={k} needs at least {k} frames, got {x.shape[0]}; "
                          "lower the K values or give the clustering more frames")
    x = x.float()
    generator = torch.Generator().manual_seed(int(seed))
    centroids = kmeans_pp(x, k, generator)
    labels, dists = assign(x, centroids)
    for _ in range(iters):
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k)
        empty = (counts == 0).nonzero().flatten()
        centroids = torch.where(counts[:, None] > 0,
                                sums / counts.clamp_min(1)[:, None].to(x.dtype), centroids)
        if len(empty):
            far = torch.argsort(dists, descending=True, stable=True)[: len(empty)]
            centroids[empty] = x[far]
        new_labels, dists = assign(x, centroids)
        moved = int((new_labels != labels).sum())
        labels = new_labels
        if moved <= tol * len(labels) and not len(empty):
            break
    return centroids, labels
