"""``serbench.testing.check_method``: passes real methods, catches the defects it names."""

from __future__ import annotations

import pytest
import torch

from serbench import MethodSpec
from serbench.registry import collect
from serbench.testing import check_method


@pytest.mark.parametrize("name,options", [("linear", {}), ("mlp", {}), ("gmp_tl", {}),
                                          ("emo_clap", {"text_encoder": "minilm"})])
def test_first_party_methods_pass(name: str, options: dict) -> None:
    checks = check_method(collect().methods.get(name), options)
    assert [c.name for c in checks if not c.ok] == []
    assert len(checks) == 7  # the last: reads only the layer its option names


class UnmaskedMean(torch.nn.Module):
    """Averages over padded frames too: its predictions depend on the padding."""

    def __init__(self, ctx) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.head = torch.nn.Linear(ctx.upstream.hidden_size, ctx.num_classes)

    def predict(self, batch):  # type: ignore[no-untyped-def]
        return self.head(batch.features[-1].mean(1))

    def loss(self, batch):  # type: ignore[no-untyped-def]
        return torch.nn.functional.cross_entropy(self.predict(batch), batch.labels)


class VectorLoss(UnmaskedMean):
    def loss(self, batch):  # type: ignore[no-untyped-def]
        return torch.nn.functional.cross_entropy(self.predict(batch), batch.labels,
                                                 reduction="none")


def test_a_method_that_pools_over_padding_fails_the_padding_check() -> None:
    checks = {c.name: c for c in check_method(MethodSpec("bad", build=UnmaskedMean))}
    assert not checks["padding does not change predictions"].ok
    assert checks["loss falls on a separable batch"].ok


class LastLayerAlways(UnmaskedMean):
    """Declares a ``layer`` option but always reads the last tensor of the batch."""

    def predict(self, batch):  # type: ignore[no-untyped-def]
        from serbench.nn import masked_mean

        return self.head(masked_mean(batch.features[-1], batch.lengths))


def test_a_method_that_ignores_the_layers_the_batch_holds_is_reported() -> None:
    spec = MethodSpec("bad", build=LastLayerAlways, layer_option="layer",
                      defaults={"layer": "last"})
    checks = {c.name: c for c in check_method(spec)}
    check = checks["reads only the layer its option layer names"]
    assert not check.ok and check.detail.startswith("max difference ")
    assert checks["padding does not change predictions"].ok


def test_a_loss_that_is_not_a_scalar_is_reported() -> None:
    checks = check_method(MethodSpec("bad", build=VectorLoss))
    assert [(c.name, c.ok) for c in checks][-1] == ("loss is a finite scalar", False)


def test_a_build_that_raises_is_reported() -> None:
    def build(ctx):  # type: ignore[no-untyped-def]
        raise RuntimeError("no such layer")

    (check,) = check_method(MethodSpec("bad", build=build))
    assert (check.name, check.ok, check.detail) == ("build", False, "RuntimeError: no such layer")


def test_validate_method_on_the_command_line() -> None:
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "serbench.cli", "validate", "method", "ml_gemo",
                          "--option", "text_encoder=minilm", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["method"] == "ml_gemo" and report["ok"] and len(report["checks"]) == 7
    bad = subprocess.run([sys.executable, "-m", "serbench.cli", "validate", "method", "linear",
                          "--option", "hiden=3"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr == ("serbench: error: method 'linear' has no option 'hiden'; "
                          "did you mean 'hidden'?\n")
