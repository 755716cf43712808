"""EmoDB read from the real copy in ../shared/data: the counts the README publishes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from serbench.data.manifests import dataset_options, load_folds, load_utterances, resolve_root
from serbench.registry import collect
from serbench.specs import ConfigError


@pytest.fixture(scope="module")
def spec():
    return collect().datasets.get("emodb")


def test_counts_match_the_published_tables(spec, data_root: Path) -> None:
    root = resolve_root(spec, data_root, None)
    assert root.name == "emodb"
    utts = load_utterances(spec, root, dataset_options(spec, {}))
    assert len(utts) == 535
    assert Counter(u.label for u in utts) == {
        "angry": 127, "bored": 81, "neutral": 79, "happy": 71, "fearful": 69, "sad": 62,
        "disgusted": 46,
    }
    assert Counter(u.speaker for u in utts) == {
        "03": 49, "08": 58, "09": 43, "10": 38, "11": 55, "12": 35, "13": 61, "14": 69,
        "15": 56, "16": 71,
    }
    assert Counter(u.gender for u in utts) == {"male": 233, "female": 302}
    assert sum(u.duration for u in utts) == pytest.approx(1487.09, abs=0.01)
    first = next(u for u in utts if u.key == "03a01Fa")
    assert (first.path, first.label, first.text) == (
        "wav/03a01Fa.wav", "happy", "The tablecloth is lying on the fridge.")


def test_german_transcripts_by_option(spec, emodb_root: Path) -> None:
    opts = dataset_options(spec, ["text_language=de"])
    utts = {u.key: u for u in load_utterances(spec, emodb_root, opts)}
    assert utts["03a01Fa"].text == "Der Lappen liegt auf dem Eisschrank."
    assert utts["16b10Wa"].text == "Die wird auf dem Platz sein, wo wir sie immer hinlegen."


def test_loso_has_ten_speaker_independent_folds(spec, emodb_root: Path) -> None:
    utts = load_utterances(spec, emodb_root, {})
    folds = load_folds(spec, utts, None, {})
    assert [f.name for f in folds] == ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"]
    speaker = {u.key: u.speaker for u in utts}
    first = folds[0]
    assert {speaker[k] for k in first.test} == {"03"}
    assert {speaker[k] for k in first.dev} == {"08"}  # the next speaker in id order
    assert (len(first.train), len(first.dev), len(first.test)) == (428, 58, 49)
    assert {speaker[k] for k in folds[-1].dev} == {"03"}  # cyclic
    for f in folds:
        assert len(f.train) + len(f.dev) + len(f.test) == 535


def test_data_root_may_be_missing_with_a_hint(spec, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_root(spec, tmp_path / "nowhere", None)
    assert str(err.value) == (
        f"dataset 'emodb' not found at {tmp_path / 'nowhere'} (from --data-root); run "
        f"`serbench data download emodb --data-root {tmp_path / 'nowhere'}` or put the files in "
        f"{tmp_path / 'nowhere'}/emodb by hand (the Emo-DB download.zip unpacked, with its wav/ "
        f"folder)"
    )


def test_a_stray_file_name_is_one_clear_error(spec, tmp_path: Path) -> None:
    (tmp_path / "wav").mkdir()
    (tmp_path / "wav" / "notes.wav").write_bytes(b"")
    (tmp_path / "wav" / "._03a01Fa.wav").write_bytes(b"")  # macOS metadata: skipped
    with pytest.raises(ConfigError, match=r"notes\.wav: not an Emo-DB file name"):
        spec.load_manifest(tmp_path, {"text_language": "en"})
