"""MSP-Podcast parsed from a tree shaped like the release: labels_consensus.csv and Audios/."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from serbench.data.folds import ProtocolError
from serbench.data.manifests import load_folds, load_utterances
from serbench.registry import collect
from serbench.specs import ConfigError

HEADER = "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"
ROWS = [
    ("MSP-PODCAST_0001_0001.wav", "A", "10", "Female", "Train"),
    ("MSP-PODCAST_0001_0002.wav", "N", "10", "Female", "Train"),
    ("MSP-PODCAST_0002_0001.wav", "H", "11", "Male", "Train"),
    ("MSP-PODCAST_0003_0001.wav", "O", "12", "Male", "Train"),  # other: no class
    ("MSP-PODCAST_0004_0001.wav", "S", "20", "Male", "Development"),
    ("MSP-PODCAST_0005_0001.wav", "C", "30", "Female", "Test1"),
    ("MSP-PODCAST_0005_0002.wav", "X", "30", "Female", "Test1"),  # no agreement
    ("MSP-PODCAST_0006_0001.wav", "U", "Unknown", "Unknown", "Test1"),
    ("MSP-PODCAST_0007_0001.wav", "D", "40", "Male", "Test2"),
]


def build_tree(base: Path, rows: list = ROWS) -> Path:
    root = base / "MSP-Podcast"
    (root / "Audios").mkdir(parents=True)
    (root / "Labels").mkdir()
    (root / "Transcripts").mkdir()
    lines = [HEADER]
    for name, code, speaker, gender, split in rows:
        lines.append(f"{name},{code},4.0,4.0,4.0,{speaker},{gender},{split}")
        sf.write(str(root / "Audios" / name), np.zeros(160, np.float32), 16000, subtype="PCM_16")
    (root / "Transcripts" / "MSP-PODCAST_0001_0001.txt").write_text("well I told you so\n")
    (root / "Labels" / "labels_consensus.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def spec():
    return collect().datasets.get("msp_podcast")


def test_categories_speakers_and_official_splits(spec, tmp_path: Path) -> None:
    root = build_tree(tmp_path)
    utts = load_utterances(spec, root, {})
    assert len(utts) == 7
    assert Counter(u.split for u in utts) == {"Train": 3, "Development": 1, "Test1": 2,
                                              "Test2": 1}
    by_key = {u.key: u for u in utts}
    first = by_key["MSP-PODCAST_0001_0001"]
    assert (first.path, first.label, first.speaker, first.gender, first.text) == (
        "Audios/MSP-PODCAST_0001_0001.wav", "angry", "10", "female", "well I told you so")
    unknown = by_key["MSP-PODCAST_0006_0001"]
    assert (unknown.speaker, unknown.gender, unknown.label) == (
        "unknown:MSP-PODCAST_0006_0001", None, "surprised")
    (fold,) = load_folds(spec, utts, None, {})
    assert (fold.name, len(fold.train), fold.dev, fold.test) == (
        "test1", 3, ("MSP-PODCAST_0004_0001",),
        ("MSP-PODCAST_0005_0001", "MSP-PODCAST_0006_0001"))
    (fold2,) = load_folds(spec, utts, "official_test2", {})
    assert fold2.test == ("MSP-PODCAST_0007_0001",)


def test_bad_rows_and_leaking_speakers(spec, tmp_path: Path) -> None:
    root = build_tree(tmp_path / "a", ROWS + [("MSP-PODCAST_0009_0001.wav", "Q", "9", "Male",
                                               "Train")])
    with pytest.raises(ConfigError) as err:
        load_utterances(spec, root, {})
    assert str(err.value) == (f"{root / 'Labels' / 'labels_consensus.csv'}:11: bad FileName "
                              f"'MSP-PODCAST_0009_0001.wav' or EmoClass 'Q'")
    leak = build_tree(tmp_path / "b", ROWS + [("MSP-PODCAST_0005_0009.wav", "A", "30",
                                               "Female", "Train")])
    utts = load_utterances(spec, leak, {})
    with pytest.raises(ProtocolError) as err:
        load_folds(spec, utts, None, {})
    assert str(err.value) == ("msp_podcast fold 'test1': test speaker '30' also appears in train "
                              "(utterance 'MSP-PODCAST_0005_0009'); folds must be "
                              "speaker-independent")


def test_unknown_speakers_take_training_statistics_under_speaker_normalisation(
        spec, tmp_path: Path) -> None:
    from test_features import CPU, tiny_spec

    from serbench.data import features
    from serbench.data.feeds import CachedFeed

    root = build_tree(tmp_path)
    rng = np.random.default_rng(0)
    for i, wav in enumerate(sorted((root / "Audios").glob("*.wav"))):
        sf.write(str(wav), (0.1 * (i + 1) * rng.standard_normal(8000)).astype(np.float32),
                 16000, subtype="PCM_16")
    utts = load_utterances(spec, root, {})
    (fold,) = load_folds(spec, utts, None, {})
    by_key = {u.key: u for u in utts}
    splits = {s: [by_key[k] for k in getattr(fold, s)] for s in ("train", "dev", "test")}
    entry = features.cached_features(tiny_spec(tmp_path / "calls", layers=2, dim=4),
                                     "msp_podcast", root, utts, CPU, quiet=True)
    index = {lab: i for i, lab in enumerate(sorted({u.label for u in utts}))}
    feed = CachedFeed(entry, splits, index, 60.0, pooled=True, normalize="speaker")

    def pooled(split: str) -> dict:
        return {k: x for b in feed.evaluate(split)
                for k, x in zip(b.keys, b.stacked[:, :, 0], strict=True)}

    test = pooled("test")
    unknown = test["MSP-PODCAST_0006_0001"]
    mean, std = entry.moments([u.key for u in splits["train"]])
    raw = np.asarray(entry.pooled[entry.rows["MSP-PODCAST_0006_0001"]], dtype=np.float32)
    assert np.abs(unknown.numpy()).min() > 0  # its own statistics would give exactly zero
    assert np.allclose(unknown.numpy(), (raw - mean) / std, atol=1e-5)
    # a speaker with two utterances keeps its own statistics
    train = pooled("train")
    pair = [train["MSP-PODCAST_0001_0001"].numpy(), train["MSP-PODCAST_0001_0002"].numpy()]
    assert np.allclose(pair[0], -pair[1], atol=1e-4)  # two utterances centred on their mean
