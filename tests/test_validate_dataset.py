"""`serbench validate dataset`: a dataset read as a run will read it, every problem named."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from plugin_dists import activate, install_plugin

BAD_DATASET = """
from serbench import DatasetSpec, Fold, Utterance, hookimpl

def load_manifest(root, options):
    return [Utterance(key=f"u{i}", path=path, label=label, speaker=spk, gender=gender)
            for i, (path, label, spk, gender) in enumerate([
                ("wav/03a01Wa.wav", "angry", "03", "male"),
                ("wav/03a01Nc.wav", "calm", "03", "m"),
                ("wav/08a01Fd.wav", "happy", "08", "female"),
                ("wav/09a01Fa.wav", "happy", "09", "female")])]

def folds(utterances, protocol, options):
    return [Fold("leaky", train=("u0", "u2"), dev=("u1",), test=("u3", "u0"))]

@hookimpl
def serbench_register_datasets(register):
    register(DatasetSpec(name="leaky", labels=("angry", "happy"), protocols={"split": ""},
                         load_manifest=load_manifest, folds=folds, has_gender=True,
                         dirnames=("emodb",)))
"""


def serbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "serbench.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_the_tutorial_dataset_validates_with_its_counts(data_root: Path) -> None:
    out = serbench("validate", "dataset", "mini_emodb", "--data-root", str(data_root))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == [
        f"dataset mini_emodb at {data_root / 'emodb'}",
        "PASS  manifest loads: 32 utterances",
        "PASS  keys unique: 32 distinct keys",
        "PASS  labels in the declared set: angry 8, happy 8, neutral 8, sad 8",
        "PASS  files exist and decode: 32 files",
        "PASS  genders valid: female 16, male 16",
        "PASS  protocol loso: 4 folds pass the fold checks (disjoint, speaker-independent, "
        "known labels)",
        "32 utterances, 4 speakers",
        "protocol loso folds (train/dev/test): 03 16/8/8, 08 16/8/8, 09 16/8/8, 10 16/8/8",
        "6 passed, 0 failed",
    ]


def test_missing_and_truncated_files_are_counted(data_root: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "emodb"
    shutil.copytree(data_root / "emodb" / "wav", corpus / "wav",
                    ignore=lambda d, names: [n for n in names if not n.startswith("03")])
    whole = (data_root / "emodb" / "wav" / "08a01Fd.wav").read_bytes()
    (corpus / "wav" / "08a01Fd.wav").write_bytes(whole[:len(whole) // 2])
    out = serbench("validate", "dataset", "mini_emodb", "--data-root", str(tmp_path))
    assert out.returncode == 1
    [line] = [x for x in out.stdout.splitlines() if "decode" in x]
    assert line.startswith("FAIL  files exist and decode: 24 bad, first: ")  # 08, 09, 10
    assert out.stdout.splitlines()[-1] == "5 passed, 1 failed"


def test_labels_genders_and_leaky_folds_are_named(data_root: Path, tmp_path: Path,
                                                  monkeypatch) -> None:
    activate(install_plugin(tmp_path, "leaky-dataset", "leaky", "serbench_test_leaky",
                            BAD_DATASET), monkeypatch)
    out = serbench("validate", "dataset", "leaky", "--data-root", str(data_root))
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert "FAIL  labels in the declared set: not in angry, happy: calm" in lines
    assert "FAIL  genders valid: values m (allowed: female, male)" in lines
    assert ("FAIL  protocol split: leaky: utterance 'u1' (wav/03a01Nc.wav) has label 'calm', "
            "not one of angry, happy") in lines
    assert "PASS  files exist and decode: 4 files" in lines
