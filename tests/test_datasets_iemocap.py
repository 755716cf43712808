"""IEMOCAP parsed from a tree shaped like the USC release, with its irregularities.

The tree has the irregular dialog names (``Ses03M_impro05a``, ``Ses05M_script01_1b``), CRLF
transcripts with unsegmented-turn and ``M:`` lines, annotator and header lines in the label files,
macOS ``._`` files that would break a careless parser, and utterances whose speaker letter differs
from the session letter (``Ses01M_script01_1_F000`` is spoken by the woman of session 1).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from serbench.data.audio import AudioError
from serbench.data.manifests import (
    dataset_options,
    load_folds,
    load_utterances,
    resolve_root,
)
from serbench.registry import collect
from serbench.specs import ConfigError

# dialog -> [(utterance suffix, code, start, end, transcript)]
DIALOGS = {
    1: {
        "Ses01F_impro01": [
            ("F000", "neu", 6.2901, 8.2357, "Excuse me."),
            ("M000", "ang", 10.01, 11.3925, "Do you have your forms?"),
            ("F001", "xxx", 14.8872, 18.0175, "Yeah."),
            ("M001", "fru", 19.29, 20.7875, "Let me see them."),
            ("F002", "hap", 21.3257, 24.7313, "Is there a problem?"),
            ("M002", "exc", 27.46, 31.49, "Who told you to get in this line?"),
        ],
        "Ses01M_script01_1": [
            ("F000", "sad", 1.0, 3.5, "What is it?"),
            ("M000", "neu", 4.0, 5.25, "Nothing."),
        ],
    },
    2: {"Ses02F_impro08": [("F000", "exc", 2.0, 4.0, "I got in!"),
                           ("M000", "sad", 5.0, 6.5, "I didn't.")]},
    3: {
        "Ses03M_impro05a": [("F000", "ang", 1.0, 2.0, "No."), ("M000", "neu", 3.0, 4.5, "Okay.")],
        "Ses03M_impro05b": [("F000", "hap", 1.5, 2.5, "Great.")],
    },
    4: {"Ses04F_script03_2": [("M000", "sad", 0.5, 2.0, "Why?"),
                              ("F000", "neu", 2.5, 3.0, "Because.")]},
    5: {
        "Ses05M_script01_1b": [("F000", "neu", 1.0, 2.0, "Hello."),
                               ("M000", "hap", 2.5, 4.0, "Hi there!")],
        "Ses05F_impro03": [("F000", "dis", 1.0, 2.0, "Ugh."), ("M000", "sur", 2.5, 3.0, "Oh!")],
    },
}


def _label_file(dialog: str, rows: list) -> str:
    lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    for suffix, code, start, end, _ in rows:
        lines += [
            f"[{start:.4f} - {end:.4f}]\t{dialog}_{suffix}\t{code}\t[2.5000, 2.5000, 2.5000]",
            "C-E2:\tNeutral;\t()",
            "C-F1:\tNeutral;\t(curious)",
            "A-E3:\tval 3; act 2; dom  2;\t()",
            "",
        ]
    return "\n".join(lines) + "\n"


def build_tree(base: Path) -> Path:
    root = base / "IEMOCAP_full_release"
    for n, dialogs in DIALOGS.items():
        session = root / f"Session{n}"
        labels = session / "dialog" / "EmoEvaluation"
        texts = session / "dialog" / "transcriptions"
        (labels / "Categorical").mkdir(parents=True)
        texts.mkdir(parents=True)
        for dialog, rows in dialogs.items():
            (labels / f"{dialog}.txt").write_text(_label_file(dialog, rows))
            # per-annotator files in the subfolders also have '[' lines: never read
            (labels / "Categorical" / f"{dialog}_e1_cat.txt").write_text(
                f"[0.0 - 1.0]\t{dialog}_F000\t:Anger; ()\n")
            transcript = [f"{dialog}_{s} [{a:08.4f}-{b:08.4f}]: {t}" for s, _, a, b, t in rows]
            transcript += [f"{dialog}_FXX0 [000.0000-001.0000]: unsegmented turn",
                           "M: [BREATHING]"]
            (texts / f"{dialog}.txt").write_bytes(("\r\n".join(transcript) + "\r\n").encode())
            wavs = session / "sentences" / "wav" / dialog
            wavs.mkdir(parents=True)
            for suffix, *_ in rows:
                sf.write(str(wavs / f"{dialog}_{suffix}.wav"), np.zeros(160, np.float32), 16000,
                         subtype="PCM_16")
            (wavs / f"._{dialog}_{rows[0][0]}.wav").write_bytes(b"\x00\x05\x16\x07 mac junk")
            (wavs / f"{dialog}.pk").write_bytes(b"not audio")
            (labels / f"._{dialog}.txt").write_bytes(b"[\x00\x05 mac junk\t\n")
            (texts / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07")
    return root


@pytest.fixture(scope="module")
def spec():
    return collect().datasets.get("iemocap")


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return build_tree(tmp_path)


def test_four_class_parse(spec, root: Path) -> None:
    assert resolve_root(spec, root.parent, None) == root.resolve()
    utts = load_utterances(spec, root, dataset_options(spec, {}))
    assert len(utts) == 15
    assert Counter(u.label for u in utts) == {"neutral": 5, "happy": 5, "sad": 3, "angry": 2}
    assert Counter(u.session for u in utts) == {
        "Session1": 6, "Session2": 2, "Session3": 3, "Session4": 2, "Session5": 2}
    by_key = {u.key: u for u in utts}
    u = by_key["Ses01M_script01_1_F000"]
    assert (u.speaker, u.gender, u.session, u.label, u.text) == (
        "Ses01F", "female", "Session1", "sad", "What is it?")
    assert u.path == "Session1/sentences/wav/Ses01M_script01_1/Ses01M_script01_1_F000.wav"
    # the label file's span says 2.5 s; the 160-sample file says 0.01 s: the audio wins
    assert u.duration == pytest.approx(0.01)
    assert by_key["Ses01F_impro01_M002"].label == "happy"  # exc merged into happy
    assert by_key["Ses03M_impro05a_M000"].path == (
        "Session3/sentences/wav/Ses03M_impro05a/Ses03M_impro05a_M000.wav")
    assert by_key["Ses05M_script01_1b_M000"].text == "Hi there!"
    assert by_key["Ses04F_script03_2_M000"].speaker == "Ses04M"
    genders = {(u.speaker, u.gender) for u in utts}
    assert all(g == {"F": "female", "M": "male"}[s[-1]] for s, g in genders)
    assert len({s for s, _ in genders}) == 10


def test_full_label_set_and_improvised_subset(spec, root: Path) -> None:
    full = load_utterances(spec, root, dataset_options(spec, ["label_set=full"]))
    assert Counter(u.label for u in full) == {
        "neutral": 5, "happy": 3, "excited": 2, "sad": 3, "angry": 2, "frustrated": 1,
        "disgusted": 1, "surprised": 1}  # 'xxx' (no majority) is never a label
    everything = load_utterances(spec, root, dataset_options(spec, ["label_set=all"]))
    assert len(everything) == 19  # every summary line, 'xxx' included as no_agreement
    assert {u.key: u.label for u in everything}["Ses01F_impro01_F001"] == "no_agreement"
    impro = load_utterances(spec, root, dataset_options(spec, ["improvised=true"]))
    assert sorted(u.key for u in impro) == [
        "Ses01F_impro01_F000", "Ses01F_impro01_F002", "Ses01F_impro01_M000",
        "Ses01F_impro01_M002", "Ses02F_impro08_F000", "Ses02F_impro08_M000",
        "Ses03M_impro05a_F000", "Ses03M_impro05a_M000", "Ses03M_impro05b_F000"]


def test_protocols_are_speaker_independent(spec, root: Path) -> None:
    utts = load_utterances(spec, root, {})
    loso = load_folds(spec, utts, None, {})
    assert [f.name for f in loso] == [f"Session{n}" for n in range(1, 6)]
    speaker = {u.key: u.speaker for u in utts}
    assert {speaker[k] for k in loso[0].test} == {"Ses01F", "Ses01M"}
    # dev: both speakers of the next session, cyclically (gender-balanced, session-disjoint)
    assert {speaker[k] for k in loso[0].dev} == {"Ses02F", "Ses02M"}
    assert {speaker[k] for k in loso[4].dev} == {"Ses01F", "Ses01M"}
    assert [(len(f.train), len(f.dev), len(f.test)) for f in loso] == [
        (7, 2, 6), (10, 3, 2), (10, 2, 3), (11, 2, 2), (7, 6, 2)]
    lospk = load_folds(spec, utts, "lospk", {})
    assert [f.name for f in lospk] == [f"Ses0{n}{g}" for n in range(1, 6) for g in "FM"]
    assert {speaker[k] for k in lospk[0].dev} == {"Ses01M"}


def test_malformed_summary_line_names_file_and_line(spec, root: Path) -> None:
    path = root / "Session2" / "dialog" / "EmoEvaluation" / "Ses02F_impro08.txt"
    lines = path.read_text().splitlines()
    lines[7] = "[5.0000 - ]\tSes02F_impro08_M000\tsad"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as err:
        load_utterances(spec, root, {})
    assert str(err.value) == (
        f"{path}:8: malformed summary line '[5.0000 - ]\\tSes02F_impro08_M000\\tsad' "
        f"(expected '[start - end]<TAB>utterance<TAB>label<TAB>[V, A, D]')"
    )


def test_bad_ids_codes_and_missing_audio(spec, root: Path) -> None:
    path = root / "Session4" / "dialog" / "EmoEvaluation" / "Ses04F_script03_2.txt"
    good = path.read_text()
    path.write_text(good.replace("Ses04F_script03_2_M000\tsad", "Ses04F_script03_2_M000\tjoy"))
    with pytest.raises(ConfigError, match=rf"^{path}:3: unknown emotion code 'joy' for "):
        load_utterances(spec, root, {})
    path.write_text(good.replace("Ses04F_script03_2_M000", "Ses03F_script03_2_M000"))
    with pytest.raises(ConfigError, match=rf"^{path}:3: utterance Ses03F_script03_2_M000 does "
                                          r"not belong to Session4$"):
        load_utterances(spec, root, {})
    path.write_text(good)
    wav = root / "Session4/sentences/wav/Ses04F_script03_2/Ses04F_script03_2_M000.wav"
    wav.unlink()
    with pytest.raises(AudioError) as err:
        load_utterances(spec, root, {})
    assert str(err.value) == f"{wav}: file not found"


def test_improvised_only_protocol(spec, root: Path) -> None:
    utts = load_utterances(spec, root, {})
    folds = load_folds(spec, utts, "loso_improvised", {})
    # sessions 4 and 5 have no improvised 4-class utterance in this tree: no fold
    assert [f.name for f in folds] == ["Session1", "Session2", "Session3"]
    assert [(len(f.train), len(f.dev), len(f.test)) for f in folds] == [
        (3, 2, 4), (4, 3, 2), (2, 4, 3)]
    assert all("_impro" in k for f in folds for k in f.train + f.dev + f.test)
