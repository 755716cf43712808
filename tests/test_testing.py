"""``serbench.testing``: each conformance check catches its defect, and the CLI says so."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from serbench import UpstreamSpec, hookimpl
from serbench import registry as registry_module
from serbench.cli import main
from serbench.plugins import make_manager
from serbench.specs import ConfigError
from serbench.testing import check_upstream, tiny_transformers_model

HOP = 320  # 50 frames per second at 16 kHz


class WindowStats(nn.Module):
    """Mean, std, min and max of every 20 ms window: a tiny real upstream with optional defects."""

    revision = "none"

    def __init__(self, defect: str | None = None) -> None:
        super().__init__()
        self.defect = defect
        self.dropout = nn.Dropout(0.5)

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor
                ) -> tuple[list[torch.Tensor], torch.Tensor]:
        windows = waves.unfold(1, HOP, HOP)
        feats = torch.stack([windows.mean(-1), windows.std(-1), windows.amin(-1),
                             windows.amax(-1)], dim=-1)
        frames = torch.div(lengths, HOP, rounding_mode="floor")
        if self.defect == "batch statistics":  # normalised over the padded batch
            feats = (feats - feats.mean(dim=(0, 1))) / feats.std(dim=(0, 1))
        if self.defect == "nan":
            feats[0, 0, 0] = float("nan")
        if self.defect == "double rate":
            frames = frames * 2
        feats = self.dropout(feats)
        layers = [feats, feats] if self.defect == "extra layer" else [feats]
        return layers, frames


def _spec(defect: str | None = None, **overrides: Any) -> UpstreamSpec:
    def load(device: Any) -> WindowStats:
        module = WindowStats(defect).to(device)
        return module.train() if defect == "train mode" else module.eval()

    fields = dict(name="window_stats", loader=load, num_layers=1, hidden_size=4, frame_rate=50.0)
    return UpstreamSpec(**{**fields, **overrides})


def _failed(spec: UpstreamSpec) -> list[str]:
    return [c.name for c in check_upstream(spec) if not c.ok]


def test_a_conforming_upstream_passes_all_ten_checks() -> None:
    checks = check_upstream(_spec())
    assert [c.name for c in checks] == [
        "loads", "eval mode", "revision", "layer count", "shapes", "frame lengths shape",
        "finite", "frame rate", "batch equals per-item", "deterministic"]
    assert all(c.ok for c in checks), checks


@pytest.mark.parametrize(("defect", "overrides", "failed"), [
    ("extra layer", {}, ["layer count"]),
    (None, {"hidden_size": 5}, ["shapes", "frame lengths shape"]),
    ("nan", {}, ["finite", "batch equals per-item"]),  # NaN lands on whichever item is first
    (None, {"frame_rate": 100.0}, ["frame rate"]),
    ("batch statistics", {}, ["batch equals per-item"]),
    ("train mode", {}, ["eval mode", "batch equals per-item", "deterministic"]),
    ("double rate", {}, ["frame lengths shape"]),
])
def test_each_defect_fails_its_check(defect: str | None, overrides: dict[str, Any],
                                     failed: list[str]) -> None:
    assert _failed(_spec(defect, **overrides)) == failed


def test_frame_count_mismatch_with_the_declared_rate_is_explained() -> None:
    (check,) = [c for c in check_upstream(_spec(frame_rate=100.0)) if c.name == "frame rate"]
    assert not check.ok
    assert check.detail == ("100 frames/s: 62 for 1.25 s (~125.0), 40 for 0.80 s (~80.0), "
                            "22 for 0.45 s (~45.0); slack 11")


def test_a_loader_that_raises_is_a_failed_check_and_config_errors_propagate() -> None:
    def broken(device: Any) -> Any:
        raise RuntimeError("weights are corrupt")

    (check,) = check_upstream(_spec(loader=broken))
    assert (check.name, check.ok) == ("loads", False)
    assert check.detail == "loader('cpu') raised RuntimeError: weights are corrupt"

    def unavailable(device: Any) -> Any:
        raise ConfigError("model x is not cached")

    with pytest.raises(ConfigError, match="model x is not cached"):
        check_upstream(_spec(loader=unavailable))


class _Toys:
    @hookimpl
    def serbench_register_upstreams(self, register: Any) -> None:
        register(_spec())
        register(_spec("batch statistics", name="window_stats_batchnorm"))


def test_cli_prints_pass_and_fail_and_exits_1_on_failure(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(registry_module, "make_manager",
                        lambda: make_manager(extra=[("toys", _Toys())]))
    assert main(["validate", "upstream", "window_stats", "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "upstream window_stats on cpu"
    assert out[-1] == "10 passed, 0 failed"
    assert all(line.startswith("PASS  ") for line in out[1:-1])

    assert main(["validate", "upstream", "window_stats_batchnorm", "--json"]) == 1
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert [c["name"] for c in report["checks"] if not c["ok"]] == ["batch equals per-item"]


def test_tiny_model_families_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown tiny model family 'conformer'"):
        tiny_transformers_model("conformer", "unused")
