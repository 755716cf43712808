"""CREMA-D parsed from a tree shaped like the publisher's repository (tiny wavs)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from serbench.data.manifests import load_folds, load_utterances, resolve_root
from serbench.registry import collect
from serbench.specs import ConfigError

EMOTIONS = ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]


def build_tree(base: Path, actors: int = 10) -> Path:
    root = base / "CREMA-D"
    (root / "AudioWAV").mkdir(parents=True)
    rows = ["ActorID,Age,Sex,Race,Ethnicity"]
    for a in range(1001, 1001 + actors):
        rows.append(f"{a},30,{'Male' if a % 2 else 'Female'},Caucasian,Not Hispanic")
        for i, emotion in enumerate(EMOTIONS):
            level = "XX" if i % 2 else "HI"
            sf.write(str(root / "AudioWAV" / f"{a}_DFA_{emotion}_{level}.wav"),
                     np.zeros(160, np.float32), 16000, subtype="PCM_16")
    (root / "VideoDemographics.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def spec():
    return collect().datasets.get("crema_d")


def test_parse_and_five_speaker_independent_folds(spec, tmp_path: Path) -> None:
    root = build_tree(tmp_path)
    assert resolve_root(spec, tmp_path, None) == root.resolve()
    utts = load_utterances(spec, root, {})
    assert len(utts) == 60
    assert Counter(u.label for u in utts) == {label: 10 for label in spec.labels}
    assert Counter(u.gender for u in utts) == {"male": 30, "female": 30}
    u = next(u for u in utts if u.key == "1002_DFA_SAD_XX")
    assert (u.path, u.speaker, u.gender, u.text) == (
        "AudioWAV/1002_DFA_SAD_XX.wav", "1002", "female", "Don't forget a jacket.")
    folds = load_folds(spec, utts, None, {})
    speaker = {u.key: u.speaker for u in utts}
    assert [sorted({speaker[k] for k in f.test}) for f in folds] == [
        ["1001", "1006"], ["1002", "1007"], ["1003", "1008"], ["1004", "1009"],
        ["1005", "1010"]]
    assert [sorted({speaker[k] for k in f.dev}) for f in folds] == [
        ["1007"], ["1008"], ["1009"], ["1010"], ["1001"]]  # one of eight (10 %, at least 1)


def test_actor_missing_from_demographics(spec, tmp_path: Path) -> None:
    root = build_tree(tmp_path, actors=2)
    stray = root / "AudioWAV" / "1091_IEO_NEU_XX.wav"
    stray.write_bytes((root / "AudioWAV" / "1001_DFA_NEU_HI.wav").read_bytes())
    with pytest.raises(ConfigError) as err:
        load_utterances(spec, root, {})
    assert str(err.value) == f"{stray}: actor 1091 is not in VideoDemographics.csv"
