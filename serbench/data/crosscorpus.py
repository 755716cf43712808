"""Cross-corpus evaluation: train (and select on dev) on all of corpus A, test on all of corpus B.

Both corpora already speak serbench's canonical label names; the protocol keeps the labels both
have among the chosen ones (``angry, happy, neutral, sad`` by default, as EmoBox's cross-corpus
benchmark) and drops every other class with a printed note. One fold, ``all``: train on A's
utterances but those of its dev speakers (10 % of A's speakers, at least one, the last in sorted
order), dev on those, test on every kept utterance of B; one model per seed. The plan's dataset
is named ``A→B`` with protocol ``cross_corpus``, so leaderboards rank it in tables of its own, and
its conditions are paired on the same test set as usual. Features are read from each corpus's own
cache entry (the entries a within-corpus run of A or B uses), joined without copying the frames.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping, Sequence

import numpy as np

from serbench.data.view import DatasetView, load_dataset
from serbench.specs import ConfigError, DatasetSpec, Fold, Utterance

PROTOCOL = "cross_corpus"
DEFAULT_LABELS = ("angry", "happy", "neutral", "sad")
TEST_PREFIX = "test:"  # B's keys and speakers in the joined view, so they never meet A's


def cross_name(train: str, test: str) -> str:
    return f"{train}→{test}"


def parse_labels(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"angry,happy"`` or a list -> the label names (default the four EmoBox classes)."""
    if not text:
        return DEFAULT_LABELS
    items = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(dict.fromkeys(s.strip() for s in items if s.strip()))
    if len(names) < 2:
        raise ConfigError(f"cross-corpus labels {text!r}: give at least two label names, e.g. "
                          "angry,happy,neutral,sad")
    return names


def _dev_speakers(utterances: Sequence[Utterance]) -> set[str]:
    speakers = sorted({u.speaker for u in utterances})
    if len(speakers) < 2:
        raise ConfigError(f"cross-corpus training needs at least 2 speakers (one for dev); the "
                          f"training corpus has {len(speakers)}")
    n = max(1, round(len(speakers) / 10))
    return set(speakers[-n:])


@dataclass
class CrossView(DatasetView):
    """The pair as one dataset view: fold ``all``, A's utterances and B's (prefixed)."""

    train_view: Any = None
    test_view: Any = None
    cross: dict[str, Any] = field(default_factory=dict)  # what the run record keeps

    def features(self, upstream: Any, device: Any, *, skip_bad_audio: bool, need_frames: bool,
                 layers: Sequence[int] | None, fill_layers: Sequence[int] | None,
                 quiet: bool) -> JointEntry:
        """Each corpus's own cache entry (shared with its within-corpus runs), joined."""
        from serbench.data.features import cached_features

        a, b = (cached_features(upstream, v.spec.name, v.root, v.utterances, device,
                                skip_bad_audio=skip_bad_audio, need_frames=need_frames,
                                layers=layers, fill_layers=fill_layers, quiet=quiet)
                for v in (self.train_view, self.test_view))
        return JointEntry(a, b)


def cross_view(train: Any, test: Any, labels: Sequence[str] = DEFAULT_LABELS) -> CrossView:
    """The cross-corpus view of two loaded :class:`DatasetView`\\ s, printing what is dropped."""
    from serbench.data.manifests import audio_path

    a_name, b_name = train.spec.name, test.spec.name
    have_a = {u.label for u in train.utterances}
    have_b = {u.label for u in test.utterances}
    kept = tuple(lab for lab in labels if lab in have_a and lab in have_b)
    same = a_name == b_name  # a corpus against another part of itself: name the sides
    sides = ((f"{a_name} (train)" if same else a_name, have_a),
             (f"{b_name} (test)" if same else b_name, have_b))
    missing = {lab: [n for n, h in sides if lab not in h] for lab in labels if lab not in kept}
    if len(kept) < 2:
        raise ConfigError(f"cross-corpus {cross_name(a_name, b_name)}: only {len(kept)} of the "
                          f"labels {', '.join(labels)} are on both sides; choose others with "
                          "--cross-labels")
    notes = [f"label {lab} dropped (missing on {', '.join(ns)})" for lab, ns in missing.items()]
    notes += [f"{n}'s classes {', '.join(sorted(h - set(labels)))} dropped (not in the label "
              "set)" for n, h in sides if h - set(labels)]
    extra = {n: sorted(h - set(kept)) for n, h in sides}
    if notes:
        print(f"serbench: cross-corpus {cross_name(a_name, b_name)}: {'; '.join(notes)}; "
              f"classes kept: {', '.join(kept)}", file=sys.stderr)
    train_utts = [u for u in train.utterances if u.label in kept]
    test_utts = [Utterance(**{**u.__dict__, "key": TEST_PREFIX + u.key,
                              "speaker": TEST_PREFIX + u.speaker,
                              "path": str(audio_path(test.root, u))})
                 for u in test.utterances if u.label in kept]
    dev = _dev_speakers(train_utts)
    fold = Fold("all", tuple(u.key for u in train_utts if u.speaker not in dev),
                tuple(u.key for u in train_utts if u.speaker in dev),
                tuple(u.key for u in test_utts))
    name = cross_name(a_name, b_name)
    options = {**train.options, **{f"test_{k}": v for k, v in test.options.items()},
               "labels": ",".join(kept)}
    spec = DatasetSpec(name=name, labels=kept, protocols={PROTOCOL: "train on A, test on B"},
                       load_manifest=train.spec.load_manifest, folds=train.spec.folds,
                       has_text=train.spec.has_text and test.spec.has_text,
                       has_gender=train.spec.has_gender and test.spec.has_gender)
    cross = {"train_dataset": a_name, "test_dataset": b_name,
             "train_options": dict(train.options), "test_options": dict(test.options),
             "label_map": {lab: lab for lab in kept}, "dropped": extra,
             "missing": list(missing), "dev_speakers": sorted(dev)}
    return CrossView(spec, train.root, options, PROTOCOL, train_utts + test_utts, {"all": fold},
                     list(train.skipped) + list(test.skipped), train, test, cross)


class JointEntry:
    """Two feature-cache entries read as one: B's keys carry :data:`TEST_PREFIX`."""

    def __init__(self, a: Any, b: Any) -> None:
        if (a.num_layers, a.dim) != (b.num_layers, b.dim):
            raise ConfigError("cross-corpus: the two corpora's feature entries differ in shape")
        self.a, self.b = a, b
        offset = len(a.keys)
        self.rows = {**a.rows, **{TEST_PREFIX + k: offset + r for k, r in b.rows.items()}}
        self.num_layers, self.dim, self.revision = a.num_layers, a.dim, a.revision
        self.skipped = list(a.skipped) + list(b.skipped)

    @cached_property
    def pooled(self) -> np.ndarray:
        return np.concatenate([np.asarray(self.a.pooled), np.asarray(self.b.pooled)])

    def _side(self, key: str) -> tuple[Any, str]:
        if key.startswith(TEST_PREFIX):
            return self.b, key[len(TEST_PREFIX):]
        return self.a, key

    def frames_of(self, key: str, layer: int) -> np.ndarray:
        entry, k = self._side(key)
        return entry.frames_of(k, layer)

    def n_frames(self, key: str) -> int:
        entry, k = self._side(key)
        return int(entry.n_frames(k))

    def moments(self, keys: Sequence[str], layers: Sequence[int] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        sides = [self._side(k) for k in keys]
        entries = {id(e) for e, _ in sides}
        if len(entries) > 1:
            raise ConfigError("cross-corpus: normalisation statistics over both corpora at once")
        entry = sides[0][0] if sides else self.a
        return entry.moments([k for _, k in sides], layers)


def load_cross(components: Any, train: Any, test_dataset: str, data_root: Any,
               test_options: Mapping[str, str], labels: Sequence[str],
               skip_bad_audio: bool) -> CrossView:
    """Load B's utterances (its folds are not used) and join them with A."""
    test = load_dataset(components, test_dataset, data_root, None, test_options, skip_bad_audio,
                        with_folds=False)
    return cross_view(train, test, labels)


def add_cross_options(p: Any) -> None:
    """``serbench run``'s cross-corpus options."""
    p.add_argument("--test-dataset", metavar="B",
                   help="cross-corpus: train on all of --dataset, test on all of B (same "
                        "--data-root unless --test-data-root)")
    p.add_argument("--test-dataset-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of --test-dataset")
    p.add_argument("--test-data-root", metavar="DIR", help="where --test-dataset is")
    p.add_argument("--cross-labels", metavar="L1,L2,...",
                   help=f"cross-corpus label set (default {','.join(DEFAULT_LABELS)})")


def cross_kwargs(args: Any) -> dict[str, Any]:
    """:func:`serbench.run.execution.make_plan`'s cross-corpus arguments from ``serbench run``'s."""
    from serbench.options import parse_pairs

    if not args.test_dataset:
        used = [n for n, v in (("--test-dataset-option", args.test_dataset_option),
                               ("--test-data-root", args.test_data_root),
                               ("--cross-labels", args.cross_labels)) if v]
        if used:
            raise ConfigError(f"{used[0]} needs --test-dataset B (the corpus to test on)")
        return {}
    return {"test_dataset": args.test_dataset,
            "test_dataset_options": parse_pairs(args.test_dataset_option,
                                                "--test-dataset-option"),
            "test_data_root": args.test_data_root,
            "cross_labels": parse_labels(args.cross_labels)}


CROSS_KEYS = ("test_dataset", "test_dataset_options", "cross_labels")


def suite_cross(check: Any, where: str, merged: Mapping[str, Any]) -> dict[str, Any]:
    """make_plan's cross-corpus arguments from a suite entry (its own keys or the file's)."""
    if "test_dataset" not in merged:
        for key in CROSS_KEYS[1:]:
            if key in merged:
                raise check.fail(f"{where}.{key}", "needs test_dataset (the corpus to test on)")
        return {}
    labels = merged.get("cross_labels")
    if labels is not None and not isinstance(labels, (str, list)):
        raise check.fail(f"{where}.cross_labels", f"expected a list of labels, got {labels!r}")
    try:
        parsed = parse_labels(labels)
    except ConfigError as exc:
        raise check.fail(f"{where}.cross_labels", str(exc)) from None
    return {"test_dataset": check.text(f"{where}.test_dataset", merged["test_dataset"]),
            "test_dataset_options": check.scalars(f"{where}.test_dataset_options",
                                                  merged.get("test_dataset_options", {})),
            "cross_labels": parsed}
