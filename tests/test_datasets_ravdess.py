"""RAVDESS parsed from a tree shaped like ``Audio_Speech_Actors_01-24.zip`` (tiny wavs)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from serbench.data.audio import load_audio
from serbench.data.manifests import dataset_options, load_folds, load_utterances, resolve_root
from serbench.registry import collect
from serbench.specs import ConfigError


def build_tree(base: Path) -> Path:
    """24 actors, two speech files each covering all 8 emotions; actor 01's first is stereo."""
    root = base / "ravdess"
    for actor in range(1, 25):
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir(parents=True)
        for i in range(2):
            emotion = (actor + 12 * i) % 8 + 1
            name = f"03-01-{emotion:02d}-0{i + 1}-0{i + 1}-01-{actor:02d}.wav"
            channels = 2 if (actor, i) == (1, 0) else 1
            wave = np.full((4800, channels), 0.1 * (i + 1), dtype=np.float32)
            sf.write(str(folder / name), wave, 48000, subtype="PCM_16")
        (folder / f"._03-01-01-01-01-01-{actor:02d}.wav").write_bytes(b"mac junk")
    sf.write(str(root / "Actor_02" / "03-02-03-01-01-01-02.wav"),  # a song file: skipped
             np.zeros(480, np.float32), 48000)
    return root


@pytest.fixture(scope="module")
def spec():
    return collect().datasets.get("ravdess")


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return build_tree(tmp_path)


def test_parse_counts_and_fields(spec, root: Path) -> None:
    assert resolve_root(spec, root.parent, None) == root.resolve()
    utts = load_utterances(spec, root, {})
    assert len(utts) == 48
    assert len({u.speaker for u in utts}) == 24
    assert Counter(u.gender for u in utts) == {"male": 24, "female": 24}
    assert Counter(u.label for u in utts) == {label: 6 for label in spec.labels}
    first = next(u for u in utts if u.key == "03-01-02-01-01-01-01")
    assert (first.path, first.label, first.speaker, first.gender, first.text) == (
        "Actor_01/03-01-02-01-01-01-01.wav", "calm", "01", "male",
        "Kids are talking by the door.")
    assert first.duration == pytest.approx(0.1)
    stereo = load_audio(root / first.path, 16000)
    assert stereo.shape == (1600,) and stereo.dtype == np.float32


def test_six_folds_of_four_actors_two_of_each_gender(spec, root: Path) -> None:
    utts = load_utterances(spec, root, {})
    folds = load_folds(spec, utts, None, {})
    assert [f.name for f in folds] == ["actors01-04", "actors05-08", "actors09-12",
                                       "actors13-16", "actors17-20", "actors21-24"]
    by_key = {u.key: u for u in utts}
    for fold in folds:
        test = {by_key[k].speaker for k in fold.test}
        dev = {by_key[k].speaker for k in fold.dev}
        train = {by_key[k].speaker for k in fold.train}
        assert len(test) == 4 and Counter(by_key[k].gender for k in fold.test) == {
            "male": 4, "female": 4}
        assert len(dev) == 2 and not (test & (dev | train))
        assert len(fold.train) + len(fold.dev) + len(fold.test) == 48
    assert {by_key[k].speaker for k in folds[0].dev} == {"05", "06"}
    assert {by_key[k].speaker for k in folds[-1].dev} == {"01", "02"}
    single = load_folds(spec, utts, None, dataset_options(spec, ["actors_per_fold=1"]))
    assert [f.name for f in single] == [f"actor{a:02d}" for a in range(1, 25)]
    assert {by_key[k].speaker for k in single[23].dev} == {"01", "02"}


def test_misfiled_or_misnamed_files(spec, root: Path) -> None:
    wrong = root / "Actor_03" / "03-01-01-01-01-01-04.wav"
    wrong.write_bytes((root / "Actor_04" / "03-01-05-01-01-01-04.wav").read_bytes())
    with pytest.raises(ConfigError) as err:
        load_utterances(spec, root, {})
    assert str(err.value) == f"{wrong}: actor 04 filed under Actor_03/"
    wrong.unlink()
    odd = root / "Actor_05" / "03-01-09-01-01-01-05.wav"
    odd.write_bytes(b"")
    with pytest.raises(ConfigError, match="a field of the RAVDESS file name is out of range"):
        load_utterances(spec, root, {})
