"""Speaker-independent folds: the referee's checks and the leave-one-group-out builder.

Dev rule (every first-party protocol): the test group is held out; dev is *all* utterances of
``dev_speakers`` training speakers (a number, or a fraction of the non-test speakers, at least
one), taken in cyclic order of the sorted speaker ids starting after the test group's last speaker
(``seed`` > 0 shuffles that order reproducibly); train is the rest.
Dev is thus speaker-disjoint from train *and* test, so model selection is speaker-independent too.
For EmoDB LOSO the fold testing speaker 03 validates on speaker 08, the one testing 16 on 03.
With ``dev_groups`` the dev set is instead every utterance of the next ``dev_groups`` groups in
cyclic order of the sorted group names after the test group (IEMOCAP LOSO: the session after
the test session, both of its speakers, so dev is gender-balanced and session-disjoint too).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Callable, Sequence

from serbench.specs import ConfigError, Fold, Utterance


class ProtocolError(ConfigError):
    """A fold that breaks speaker independence or uses a label outside the dataset's set."""


def check_folds(
    dataset: str, utterances: Sequence[Utterance], folds: Sequence[Fold], labels: Sequence[str]
) -> None:
    """Raise :class:`ProtocolError` naming the fold and the offending speaker or utterance."""
    by_key: dict[str, Utterance] = {}
    for u in utterances:
        if u.key in by_key:
            raise ProtocolError(f"{dataset}: utterance key {u.key!r} appears twice ({u.path})")
        by_key[u.key] = u
        if u.label not in labels:
            raise ProtocolError(
                f"{dataset}: utterance {u.key!r} ({u.path}) has label {u.label!r}, "
                f"not one of {', '.join(labels)}"
            )
    if not folds:
        raise ProtocolError(f"{dataset}: the protocol has no folds")
    names = Counter(f.name for f in folds)
    for name, n in names.items():
        if n > 1:
            raise ProtocolError(f"{dataset}: fold name {name!r} is used {n} times")
    for fold in folds:
        where = f"{dataset} fold {fold.name!r}"
        parts = {"train": fold.train, "dev": fold.dev, "test": fold.test}
        for part, keys in parts.items():
            if part != "dev" and not keys:
                raise ProtocolError(f"{where}: the {part} set is empty")
            seen: set[str] = set()
            for k in keys:
                if k not in by_key:
                    raise ProtocolError(f"{where}: {part} utterance {k!r} is not in the manifest")
                if k in seen:
                    raise ProtocolError(f"{where}: utterance {k!r} is listed twice in {part}")
                seen.add(k)
        for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
            both = set(parts[a]) & set(parts[b])
            if both:
                k = min(both)
                raise ProtocolError(f"{where}: utterance {k!r} is in both {a} and {b}")
        test_speakers = {by_key[k].speaker for k in fold.test}
        for part in ("train", "dev"):
            for k in parts[part]:
                spk = by_key[k].speaker
                if spk in test_speakers:
                    raise ProtocolError(
                        f"{where}: test speaker {spk!r} also appears in {part} "
                        f"(utterance {k!r}); folds must be speaker-independent"
                    )


def leave_one_group_out(
    utterances: Sequence[Utterance],
    group: Callable[[Utterance], str],
    *,
    dev_speakers: int | float = 1,
    seed: int = 0,
    groups_per_fold: Sequence[Sequence[str]] | None = None,
    names: Sequence[str] | None = None,
    dev_groups: int = 0,
) -> list[Fold]:
    """One fold per test group (or per entry of ``groups_per_fold``), dev as the module says.

    Fold names are the test group (``"03"``, ``"Session1"``) unless ``names`` are given.
    """
    groups = sorted({group(u) for u in utterances})
    tests = [list(g) for g in groups_per_fold] if groups_per_fold else [[g] for g in groups]
    unknown = sorted({g for t in tests for g in t} - set(groups))
    if unknown:
        raise ProtocolError(f"fold groups {', '.join(unknown)} have no utterances")
    if names is None:
        names = ["+".join(t) for t in tests]
    order = sorted({u.speaker for u in utterances})
    if seed:
        random.Random(seed).shuffle(order)
    # positions by dict, not list.index: a corpus of thousands of speakers stays linear
    speaker_at = {s: i for i, s in enumerate(order)}
    group_at = {g: i for i, g in enumerate(groups)}
    folds = []
    for name, test_groups in zip(names, tests, strict=True):
        held = set(test_groups)
        test = [u for u in utterances if group(u) in held]
        test_spk = {u.speaker for u in test}
        if dev_groups:
            last = max(group_at[g] for g in held)
            after = [g for g in groups[last + 1:] + groups[: last + 1] if g not in held]
            dev_groups_set = set(after[:dev_groups])
            dev_spk = {u.speaker for u in utterances if group(u) in dev_groups_set}
        else:
            last = max(speaker_at[s] for s in test_spk)
            cyclic = order[last + 1:] + order[: last + 1]
            candidates = [s for s in cyclic if s not in test_spk]
            n_dev = dev_speakers if isinstance(dev_speakers, int) else max(
                1, round(dev_speakers * len(candidates)))
            dev_spk = set(candidates[:n_dev])
        rest = [u for u in utterances if group(u) not in held and u.speaker not in test_spk]
        folds.append(
            Fold(
                name=name,
                train=tuple(u.key for u in rest if u.speaker not in dev_spk),
                dev=tuple(u.key for u in rest if u.speaker in dev_spk),
                test=tuple(u.key for u in test),
            )
        )
    return folds
