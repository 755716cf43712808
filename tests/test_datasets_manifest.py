"""Any corpus from a CSV / JSONL manifest, and EmoBox's per-fold JSONL folders as published."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from serbench.data.manifests import (
    dataset_options,
    load_folds,
    load_utterances,
    resolve_root,
)
from serbench.registry import collect
from serbench.specs import ConfigError


@pytest.fixture(scope="module")
def spec():
    return collect().datasets.get("manifest")


def wav(path: Path, seconds: float = 0.25) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.zeros(int(16000 * seconds), np.float32), 16000, subtype="PCM_16")
    return path


def write_csv(folder: Path, rows: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.csv"
    path.write_text("\n".join(["path,label,speaker,gender,fold", *rows]) + "\n")
    return path


def test_csv_with_relative_and_absolute_paths(spec, tmp_path: Path) -> None:
    elsewhere = wav(tmp_path / "elsewhere" / "x.wav", 0.5)
    for name in ("a1", "a2", "b1", "c1"):
        wav(tmp_path / "corpus" / "audio" / f"{name}.wav")
    csv = write_csv(tmp_path / "corpus", [
        "audio/a1.wav,anger,A,f,1", "audio/a2.wav,neutral,A,f,1", "audio/b1.wav,Happy,B,m,2",
        "audio/c1.wav,sad,C,male,3", f"{elsewhere},sadness,D,,3",
    ])
    assert resolve_root(spec, tmp_path / "corpus", None) == (tmp_path / "corpus").resolve()
    for root in (csv, tmp_path / "corpus"):  # the file itself or the folder holding it
        utts = load_utterances(spec, root, {})
        assert [u.key for u in utts] == ["audio/a1.wav", "audio/a2.wav", "audio/b1.wav",
                                         "audio/c1.wav", str(elsewhere)]
    assert [u.label for u in utts] == ["angry", "neutral", "happy", "sad", "sad"]
    assert [u.gender for u in utts] == ["female", "female", "male", "male", None]
    assert utts[0].path == str((tmp_path / "corpus" / "audio" / "a1.wav").resolve())
    assert [u.duration for u in utts] == [0.25, 0.25, 0.25, 0.25, 0.5]
    given = load_folds(spec, utts, None, {})
    assert [(f.name, f.test) for f in given] == [
        ("1", ("audio/a1.wav", "audio/a2.wav")), ("2", ("audio/b1.wav",)),
        ("3", ("audio/c1.wav", str(elsewhere)))]
    assert given[0].dev == ("audio/b1.wav",)  # 10 % of the other speakers, at least one
    loso = load_folds(spec, utts, "loso", {})
    assert [f.name for f in loso] == ["A", "B", "C", "D"]


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("audio/a1.wav,amused,A,f,1", "unknown label 'amused'; use one of angry, bored, calm, "
         "contempt, disgusted, excited, fearful, frustrated, happy, neutral, other, sad, "
         "surprised"),
        ("audio/zz.wav,sad,A,f,1", "audio file {folder}/audio/zz.wav not found"),
        ("audio/a1.wav,sad,,f,1", "needs a speaker (the folds are speaker-independent)"),
        ("audio/a1.wav,sad,A,x,1", "gender 'x' is not female or male"),
        ("audio/a1.wav,sad,B,f,1", "speaker 'B' is in fold '1' and in fold '2' ({csv}:2); "
         "folds must be speaker-independent"),
        ("audio/a1.wav,sad,B,f,2", "speaker 'B' is female here but male at {csv}:2; give each "
         "speaker one gender"),
    ],
)
def test_bad_rows_name_the_file_and_line(spec, tmp_path: Path, row: str, problem: str) -> None:
    folder = tmp_path / "corpus"
    wav(folder / "audio" / "a1.wav")
    wav(folder / "audio" / "b1.wav")
    csv = write_csv(folder, ["audio/b1.wav,sad,B,m,2", row])
    with pytest.raises(ConfigError) as err:
        load_utterances(spec, csv, {})
    assert str(err.value) == f"{csv}:3: " + problem.format(folder=folder, csv=csv)


def emobox_folder(base: Path) -> Path:
    """EmoBox's data/<corpus>/ layout: fold_N/<corpus>_test_fold_N.jsonl, no speaker field."""
    data = base / "EmoBox" / "data" / "toy"
    folds = {1: [("toy-a", "anger"), ("toy-b", "boredem")],
             2: [("toy-c", "Neutral"), ("toy-d", "sad"), ("toy-e", "fear")]}
    for n, items in folds.items():
        lines = [json.dumps({"key": k, "dataset": "toy", "wav": f"downloads/toy/{k}.wav",
                             "type": "raw", "sample_rate": 16000, "length": 0.25,
                             "task": "category", "emo": e, "channel": 1}) for k, e in items]
        (data / f"fold_{n}").mkdir(parents=True)
        (data / f"fold_{n}" / f"toy_test_fold_{n}.jsonl").write_text("\n".join(lines) + "\n")
        (data / f"fold_{n}" / f"toy_test_fold{n}.jsonl").write_text("\n".join(lines) + "\n")
        (data / f"fold_{n}" / f"toy_train_fold_{n}.jsonl").write_text("")
        for k, _ in items:
            wav(base / "EmoBox" / "downloads" / "toy" / f"{k}.wav")
    return data


def test_emobox_fold_files_are_read_as_published(spec, tmp_path: Path) -> None:
    data = emobox_folder(tmp_path)
    opts = dataset_options(spec, [f"audio_root={tmp_path / 'EmoBox'}"])
    utts = load_utterances(spec, data, opts)
    assert [(u.key, u.label, u.speaker, u.split, u.duration) for u in utts] == [
        ("toy-a", "angry", "utt:toy-a", "fold1", 0.25),
        ("toy-b", "bored", "utt:toy-b", "fold1", 0.25),
        ("toy-c", "neutral", "utt:toy-c", "fold2", 0.25),
        ("toy-d", "sad", "utt:toy-d", "fold2", 0.25),
        ("toy-e", "fearful", "utt:toy-e", "fold2", 0.25),
    ]
    folds = load_folds(spec, utts, None, opts)
    assert [(f.name, f.train, f.dev, f.test) for f in folds] == [
        ("fold1", ("toy-d", "toy-e"), ("toy-c",), ("toy-a", "toy-b")),
        ("fold2", ("toy-b",), ("toy-a",), ("toy-c", "toy-d", "toy-e")),
    ]
    with pytest.raises(ConfigError, match=r"toy_test_fold_?1\.jsonl:1: audio file .* not found"):
        load_utterances(spec, data, {})  # without audio_root the paths do not resolve


def test_malformed_jsonl_line(spec, tmp_path: Path) -> None:
    wav(tmp_path / "a.wav")
    path = tmp_path / "list.jsonl"
    path.write_text('{"path": "a.wav", "label": "sad", "speaker": "s1"}\n{"path": "a.wav",\n')
    with pytest.raises(ConfigError) as err:
        load_utterances(spec, path, {})
    assert str(err.value).startswith(f"{path}:2: not a JSON object (")


@pytest.mark.parametrize("given", ["nan", "inf", "-1", "0", "soon"])
def test_a_duration_that_is_not_a_positive_number_is_refused(spec, tmp_path: Path,
                                                              given: str) -> None:
    """Budgets meter audio seconds: a NaN or negative duration would let one batch hold it all."""
    folder = tmp_path / "corpus"
    wav(folder / "a1.wav")
    csv = folder / "manifest.csv"
    csv.write_text(f"path,label,speaker,duration\na1.wav,sad,A,{given}\n")
    with pytest.raises(ConfigError) as err:
        load_utterances(spec, csv, {})
    assert str(err.value) == (f"{csv}:2: duration {given!r} is not a positive number of seconds; "
                              "correct it or leave it empty (serbench reads it from the audio)")


def test_a_duration_the_audio_contradicts_is_measured(spec, tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    for name, seconds in (("tiny", 0.5), ("same", 0.25), ("huge", 1.0)):
        wav(folder / f"{name}.wav", seconds)
    csv = folder / "manifest.csv"
    csv.write_text("path,label,speaker,duration\ntiny.wav,sad,A,1e-9\nsame.wav,sad,A,0.2501\n"
                   "huge.wav,sad,B,4000\n")
    utts = load_utterances(spec, csv, {})
    assert [u.duration for u in utts] == [0.5, 0.2501, 1.0]
