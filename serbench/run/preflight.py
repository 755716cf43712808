"""Checks that hold for every run of a sweep, made once after planning and before the first run.

Planning already refuses a missing corpus, a dataset without the gender or text a method needs,
and unknown names. What is left is what loading a model would find: weights that are neither
cached nor downloadable here (offline). Found once, it is one error and no run is stored,
instead of the same error in every fold's failed run.

An upstream's loader may define ``check()``: it raises :class:`~serbench.ConfigError` when it
could not load here, without loading anything (the built-in Hugging Face loaders do).
"""

from __future__ import annotations

from typing import Any, Sequence

from serbench.specs import UpstreamSpec


def _check(spec: UpstreamSpec, seen: set[str]) -> None:
    if spec.name in seen:
        return
    seen.add(spec.name)
    check = getattr(spec.loader, "check", None)
    if callable(check):
        check()


def _features_cached(plan: Any, spec: UpstreamSpec) -> bool:
    from serbench.data.features import entry_dir, entry_key

    data = plan.dataset
    key = entry_key(spec, data.spec.name, data.root, data.utterances)
    return (entry_dir(spec, data.spec.name, key) / "meta.json").is_file()


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
