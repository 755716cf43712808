"""A dataset as one sweep sees it: its resolved root and options, its utterances and checked
folds."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from serbench.registry import Components
from serbench.specs import DatasetSpec, Fold, Utterance


@dataclass
class DatasetView:
    """A dataset as one sweep sees it: resolved root, options, utterances and checked folds."""

    spec: DatasetSpec
    root: Path
    options: dict[str, Any]
    protocol: str
    utterances: list[Utterance]
    folds: dict[str, Fold]
    skipped: list[dict[str, str]] = field(default_factory=list)
    # feature-cache entry keys per upstream, computed once per view: keying stats every audio
    # file, which at 50k utterances was half of a short run's time when done per run
    _entry_keys: dict[str, str] = field(default_factory=dict, init=False, repr=False,
                                        compare=False)

    def entry_key(self, upstream: Any) -> str:
        """The feature-cache key of this view's utterances under ``upstream`` (audio that changes
        while a sweep runs is keyed afresh by the next sweep, which plans afresh)."""
        from serbench.data.features import entry_key

        if upstream.name not in self._entry_keys:
            self._entry_keys[upstream.name] = entry_key(upstream, self.spec.name, self.root,
                                                        self.utterances)
        return self._entry_keys[upstream.name]

    @property
    def labels(self) -> tuple[str, ...]:
        present = {u.label for u in self.utterances}
        ordered = [lab for lab in self.spec.labels if lab in present]
        return tuple(ordered + sorted(present - set(ordered)))


def load_dataset(
    components: Components,
    name: str,
    data_root: str | Path | None,
    protocol: str | None,
    raw_options: Mapping[str, str],
    skip_bad_audio: bool = False,
    with_folds: bool = True,
) -> DatasetView:
    """A corpus and its protocol's folds (``with_folds=False``: its utterances only)."""
    from serbench.data.manifests import dataset_options, load_folds, load_utterances, resolve_root

    spec = components.datasets.get(name)
    options = dataset_options(spec, raw_options)
    root = resolve_root(spec, data_root, components.plugins)
    skipped: list[dict[str, str]] = []

    def on_bad(err: Any) -> None:
        skipped.append({"path": err.path, "reason": err.problem})
        print(f"serbench: warning: skipping {err}", file=sys.stderr)

    handler = on_bad if skip_bad_audio else None
    utterances = load_utterances(spec, root, options, on_bad_audio=handler)
    if not with_folds:
        return DatasetView(spec, root, options, "", utterances, {}, skipped)
    protocol = protocol or spec.default_protocol
    folds = load_folds(spec, utterances, protocol, options)
    return DatasetView(spec, root, options, protocol, utterances, {f.name: f for f in folds},
                       skipped)
