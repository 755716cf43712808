"""Checks that hold for every run of a sweep, made once after planning and before the first run.

Planning already refuses a missing corpus, a dataset without the gender or text a method needs,
and unknown names. What is left is what loading a model would find: weights that are neither
cached nor downloadable here (offline). Found once, it is one error and no run is stored,
instead of the same error in every fold's failed run.

An upstream's loader may define ``check()``: it raises :class:`~serbench.ConfigError` when it
could not load here, without loading anything (the built-in Hugging Face loaders do).

The feature cache is checked too: the entries the sweep would fill are sized with the one
estimator (:mod:`serbench.run.estimate`) and compared with the free space where
``$SERBENCH_CACHE`` lives (``$SERBENCH_CACHE_FREE_BYTES`` states it instead, for tests and for
quota-limited disks), so a sweep that would fill the disk is refused before any compute.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Sequence

from serbench.specs import ConfigError, UpstreamSpec


def _check(spec: UpstreamSpec, seen: set[str]) -> None:
    if spec.name in seen:
        return
    seen.add(spec.name)
    check = getattr(spec.loader, "check", None)
    if callable(check):
        check()


def _entry_meta(plan: Any, spec: UpstreamSpec) -> dict[str, Any] | None:
    """The ``meta.json`` body of the plan's cache entry of ``spec``; None when there is none
    (or it is damaged: it would be filled again)."""
    from serbench.data.features import CacheCorrupt, entry_dir, read_meta

    data = plan.dataset
    try:
        return read_meta(entry_dir(spec, data.spec.name, data.entry_key(spec)))
    except (FileNotFoundError, CacheCorrupt):
        return None


def _features_cached(plan: Any, spec: UpstreamSpec) -> bool:
    return _entry_meta(plan, spec) is not None


def cache_fills(plans: Sequence[Any]) -> list[tuple[str, str, int]]:
    """(upstream, dataset, estimated bytes) of every cache entry the sweep's runs would fill,
    and of the frames they would add to entries that lack the layers they read."""
    from serbench.run.estimate import Corpus, cache_bytes, frames_bytes

    fills: dict[tuple[str, str], int] = {}
    decided: set[tuple[str, str]] = set()  # an entry key hashes every file: once per entry
    for plan in plans:
        for run in plan.todo():
            cond = run.condition
            key = (cond.upstream.name, plan.dataset.spec.name)
            if key in decided or not cond.frozen:
                continue
            decided.add(key)
            layers = plan.frame_layers(cond.upstream.name)
            corpus = Corpus.of_view(plan.dataset)
            meta = _entry_meta(plan, cond.upstream)
            if meta is None:
                fills[key] = cache_bytes(cond.upstream, corpus, layers)
                continue
            every = range(int(meta["layers"]))
            missing = set(every if layers is None else layers) - set(meta.get("frame_layers", ()))
            if missing:
                fills[key] = frames_bytes(cond.upstream, corpus, missing)
    return [(u, d, n) for (u, d), n in fills.items()]


def free_cache_bytes() -> int:
    """Free space where the feature cache lives (``$SERBENCH_CACHE_FREE_BYTES`` overrides)."""
    from serbench.data.digests import cache_root

    stated = os.environ.get("SERBENCH_CACHE_FREE_BYTES")
    if stated:
        try:
            return int(stated)
        except ValueError:
            raise ConfigError(f"SERBENCH_CACHE_FREE_BYTES must be a number of bytes, got "
                              f"{stated!r}") from None
    folder = cache_root()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def check_cache_space(plans: Sequence[Any]) -> None:
    """Refuse, in one line, a sweep whose feature-cache entries would not fit on their disk."""
    from serbench.data.digests import cache_root
    from serbench.run.estimate import human_bytes

    fills = cache_fills(plans)
    need = sum(n for _, _, n in fills)
    if not fills or need <= (free := free_cache_bytes()):
        return
    what = ", ".join(f"{u} × {d} {human_bytes(n)}" for u, d, n in fills)
    raise ConfigError(f"the feature cache needs about {human_bytes(need)} ({what}) but "
                      f"{Path(cache_root())} has {human_bytes(free)} free: point SERBENCH_CACHE "
                      "at a larger disk, free some space (serbench cache ls / clear), run "
                      "fewer upstreams or datasets at a time, or store fewer frames (methods "
                      "with pooled inputs store none; --option layer=N stores one layer's)")


def preflight(plans: Sequence[Any]) -> None:
    """Raise the first error every run still to do would meet; return when there is none.

    A frozen upstream whose features are already cached needs no weights; a fine-tuned one and
    every text encoder a method names (option ``text_encoder``) do.
    """
    seen: set[str] = set()  # checked, or not needed
    for plan in plans:
        for run in plan.todo():
            cond = run.condition
            upstream = cond.upstream
            if upstream.name not in seen and not cond.method.finetunes(cond.options) \
                    and _features_cached(plan, upstream):
                seen.add(upstream.name)
            _check(upstream, seen)
            if "text_encoder" in cond.options:
                _check(plan.components.upstreams.get(str(cond.options["text_encoder"])), seen)
    check_cache_space(plans)
