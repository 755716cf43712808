"""The tutorial plugin's own tests: what a plugin author writes, using ``serbench.testing``.

They import only serbench's public API: ``serbench`` and ``serbench.testing``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from serbench import Batch, components
from serbench.testing import check_dataset, check_method, check_upstream

# EmoDB for the dataset tests: $SERBENCH_TEST_DATA, else ../shared/data beside the repository
DATA = Path(os.environ.get("SERBENCH_TEST_DATA",
                           Path(__file__).resolve().parents[4] / "shared" / "data"))


def test_registered_through_the_entry_point() -> None:
    comps = components()
    assert comps.upstreams.origin["example_mfcc"] == "example"
    assert comps.methods.origin["prototype"] == "example"
    assert comps.datasets.origin["mini_emodb"] == "example"


@pytest.fixture(scope="module")
def emodb() -> Path:
    if not (DATA / "emodb" / "wav").is_dir():
        pytest.fail(f"EmoDB not found under {DATA}; set SERBENCH_TEST_DATA")
    return DATA / "emodb"


def test_mini_emodb_passes_the_dataset_checks(emodb: Path) -> None:
    checks, counts = check_dataset(components().datasets.get("mini_emodb"), emodb)
    assert [c for c in checks if not c.ok] == []
    assert counts["labels"] == {"angry": 8, "happy": 8, "neutral": 8, "sad": 8}
    assert counts["genders"] == {"female": 16, "male": 16}
    assert [(f["fold"], f["train"], f["dev"], f["test"]) for f in counts["folds"]["loso"]] == [
        ("03", 16, 8, 8), ("08", 16, 8, 8), ("09", 16, 8, 8), ("10", 16, 8, 8)]


def test_mini_emodb_folds_hold_out_one_speaker_and_validate_on_the_next(emodb: Path) -> None:
    spec = components().datasets.get("mini_emodb")
    utts = spec.load_manifest(emodb, {})
    speaker = {u.key: u.speaker for u in utts}
    fold = {f.name: f for f in spec.folds(utts, "loso", {})}["10"]
    assert {speaker[k] for k in fold.test} == {"10"}
    assert {speaker[k] for k in fold.dev} == {"03"}  # cyclic: after the last speaker, the first
    assert {speaker[k] for k in fold.train} == {"08", "09"}


def test_mfcc_upstream_passes_the_conformance_checks() -> None:
    spec = components().upstreams.get("example_mfcc")
    failed = [c for c in check_upstream(spec) if not c.ok]
    assert failed == []


def test_prototype_method_passes_the_conformance_checks() -> None:
    spec = components().methods.get("prototype")
    failed = [c for c in check_method(spec) if not c.ok]
    assert failed == []


def test_mfcc_of_silence_is_the_log_floor_through_the_dct() -> None:
    from serbench_example.mfcc import MFCC

    model = MFCC(n_mfcc=20, n_mels=40)
    (mfcc,), n = model(torch.zeros(1, 16000), torch.tensor([16000]))
    assert n.tolist() == [98]  # (16000 - 400) // 160 + 1
    # every log-mel value is log(1e-6); the orthonormal DCT puts it all in coefficient 0
    assert math.isclose(float(mfcc[0, 0, 0]), math.log(1e-6) * math.sqrt(40), rel_tol=1e-4)
    assert float(mfcc[0, 0, 1:].abs().max()) < 1e-3


def test_prototype_scores_are_scaled_cosines() -> None:
    from serbench_example.prototype import PrototypeClassifier

    spec = components().upstreams.get("example_mfcc")

    class Ctx:
        upstream = spec
        num_classes = 2
        options = {"temperature": 10.0}

    model = PrototypeClassifier(Ctx())  # type: ignore[arg-type]
    with torch.no_grad():
        model.prototypes.copy_(torch.eye(2, 20))
    x = torch.zeros(1, 1, 20)
    x[0, 0, 0] = 1.0
    x[0, 0, 1] = -1.0
    batch = Batch(keys=["a"], labels=torch.tensor([0]), lengths=torch.tensor([1]),
                  speakers=["s"], features=[x])
    with torch.no_grad():
        scores = model.predict(batch)[0]
    # LayerNorm of (1, -1, 0, ..., 0) keeps the sign pattern: cosine with e0 > 0 > with e1
    assert scores[0] > 0 > scores[1]
    assert math.isclose(float(scores[0]), -float(scores[1]), rel_tol=1e-5)
    assert float(scores.abs().max()) <= 10.0 + 1e-5
