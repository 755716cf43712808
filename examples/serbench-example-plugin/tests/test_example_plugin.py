"""The tutorial plugin's own tests: what a plugin author writes, using ``serbench.testing``."""

from __future__ import annotations

import math

import torch

from serbench import Batch
from serbench.registry import collect
from serbench.testing import check_method, check_upstream


def test_registered_through_the_entry_point() -> None:
    comps = collect()
    assert comps.upstreams.origin["example_mfcc"] == "example"
    assert comps.methods.origin["prototype"] == "example"


def test_mfcc_upstream_passes_the_conformance_checks() -> None:
    spec = collect().upstreams.get("example_mfcc")
    failed = [c for c in check_upstream(spec) if not c.ok]
    assert failed == []


def test_prototype_method_passes_the_conformance_checks() -> None:
    spec = collect().methods.get("prototype")
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

    spec = collect().upstreams.get("example_mfcc")

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
