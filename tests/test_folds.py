"""The referee's fold checks and the leave-one-group-out builder, on hand-made utterances."""

from __future__ import annotations

import pytest

from serbench.data.folds import ProtocolError, check_folds, leave_one_group_out
from serbench.specs import ConfigError, Fold, Utterance

LABELS = ("angry", "sad")


def corpus() -> list[Utterance]:
    """Speakers A-D (A, B in session 1; C, D in session 2), two utterances each."""
    return [
        Utterance(f"{s}{i}", f"{s}{i}.wav", LABELS[i], s, session="1" if s in "AB" else "2")
        for s in "ABCD" for i in range(2)
    ]


def test_one_fold_per_speaker_dev_is_the_next_speaker() -> None:
    folds = leave_one_group_out(corpus(), lambda u: u.speaker)
    assert folds == [
        Fold("A", train=("C0", "C1", "D0", "D1"), dev=("B0", "B1"), test=("A0", "A1")),
        Fold("B", train=("A0", "A1", "D0", "D1"), dev=("C0", "C1"), test=("B0", "B1")),
        Fold("C", train=("A0", "A1", "B0", "B1"), dev=("D0", "D1"), test=("C0", "C1")),
        Fold("D", train=("B0", "B1", "C0", "C1"), dev=("A0", "A1"), test=("D0", "D1")),
    ]
    check_folds("toy", corpus(), folds, LABELS)


def test_groups_sizes_and_fractions_of_dev_speakers() -> None:
    by_session = leave_one_group_out(corpus(), lambda u: u.session or "")
    assert [(f.name, f.dev, f.test) for f in by_session] == [
        ("1", ("C0", "C1"), ("A0", "A1", "B0", "B1")),
        ("2", ("A0", "A1"), ("C0", "C1", "D0", "D1")),
    ]
    two = leave_one_group_out(corpus(), lambda u: u.speaker, dev_speakers=2)
    assert two[0].dev == ("B0", "B1", "C0", "C1") and two[0].train == ("D0", "D1")
    third = leave_one_group_out(corpus(), lambda u: u.speaker, dev_speakers=0.34)
    assert third[0].dev == ("B0", "B1")  # a third of the three other speakers
    paired = leave_one_group_out(corpus(), lambda u: u.speaker, groups_per_fold=[["A", "D"]],
                                 names=["AD"])
    assert [(f.name, f.train, f.dev) for f in paired] == [("AD", ("C0", "C1"), ("B0", "B1"))]


def test_a_seed_reorders_dev_speakers_reproducibly() -> None:
    one = leave_one_group_out(corpus(), lambda u: u.speaker, seed=3)
    assert one == leave_one_group_out(corpus(), lambda u: u.speaker, seed=3)
    check_folds("toy", corpus(), one, LABELS)
    # seed 3 orders the speakers D, A, C, B: each fold's dev is the next one in that cycle
    assert [f.dev for f in one] == [("C0", "C1"), ("D0", "D1"), ("B0", "B1"), ("A0", "A1")]
    plain = leave_one_group_out(corpus(), lambda u: u.speaker)
    assert [f.test for f in one] == [f.test for f in plain]


def _fold(**parts: tuple[str, ...]) -> Fold:
    base = {"train": ("C0", "C1"), "dev": ("B0",), "test": ("A0", "A1")}
    base.update(parts)
    return Fold("f1", **base)


def test_a_dev_speaker_may_also_train_but_never_test() -> None:
    check_folds("toy", corpus(), [_fold(train=("C0", "B1"))], LABELS)


@pytest.mark.parametrize(
    ("fold", "message"),
    [
        (_fold(train=("C0", "A1"), test=("A0",)),
         "toy fold 'f1': test speaker 'A' also appears in train (utterance 'A1'); "
         "folds must be speaker-independent"),
        (_fold(dev=("A1",), test=("A0",)),
         "toy fold 'f1': test speaker 'A' also appears in dev (utterance 'A1'); "
         "folds must be speaker-independent"),
        (_fold(dev=("C0",)), "toy fold 'f1': utterance 'C0' is in both train and dev"),
        (_fold(train=("Z9",)), "toy fold 'f1': train utterance 'Z9' is not in the manifest"),
        (_fold(test=()), "toy fold 'f1': the test set is empty"),
    ],
)
def test_violations_name_the_fold_and_the_culprit(fold: Fold, message: str) -> None:
    with pytest.raises(ProtocolError) as err:
        check_folds("toy", corpus(), [fold], LABELS)
    assert str(err.value) == message
    assert isinstance(err.value, ConfigError)


def test_labels_outside_the_dataset_set_and_repeated_names() -> None:
    utts = corpus() + [Utterance("E0", "E0.wav", "happy", "E")]
    with pytest.raises(ProtocolError) as err:
        check_folds("toy", utts, [_fold()], LABELS)
    assert str(err.value) == "toy: utterance 'E0' (E0.wav) has label 'happy', not one of angry, sad"
    with pytest.raises(ProtocolError, match="fold name 'f1' is used 2 times"):
        check_folds("toy", corpus(), [_fold(), _fold()], LABELS)
