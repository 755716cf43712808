"""The public surfaces the layout step declared once: serbench.nn for method authors, lazy
``"module:attr"`` loaders, ``MethodSpec.baseline``, the harness options and the run record."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import serbench
from serbench import ConfigError, MethodSpec, UpstreamSpec
from serbench.nn import masked_mean, masked_stats
from serbench.options import HarnessOptions
from serbench.run.record import RunRecord
from serbench.run.suites import baseline_of


def test_masked_stats_pools_mean_and_std_over_valid_frames_only() -> None:
    frames = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [100.0, 100.0]],
                           [[4.0, 4.0], [4.0, 4.0], [4.0, 4.0]]])
    lengths = torch.tensor([2, 3])
    out = masked_stats(frames, lengths)
    assert out.shape == (2, 4)
    assert out[0].tolist() == [2.0, 4.0, 1.0, 2.0]  # the padded frame (100) is ignored
    assert out[1].tolist() == [4.0, 4.0, 0.0, 0.0]
    assert torch.equal(out[:, :2], masked_mean(frames, lengths))
    pooled = masked_stats(frames[:, :1], lengths)  # pre-pooled input: one frame, std 0
    assert pooled.tolist() == [[1.0, 2.0, 0.0, 0.0], [4.0, 4.0, 0.0, 0.0]]


def test_module_attr_strings_are_imported_only_when_called() -> None:
    code = ("import sys\n"
            "from serbench import MethodSpec\n"
            "spec = MethodSpec(name='m', build='serbench_baselines.probes:build_linear')\n"
            "print('serbench_baselines.probes' in sys.modules, 'torch' in sys.modules)\n"
            "print(spec.build.__qualname__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["False False", "serbench_baselines.probes:build_linear"]
    spec = UpstreamSpec(name="f", loader="serbench_upstreams.fbank:load")
    assert type(spec.loader(torch.device("cpu"))).__name__ == "Fbank"
    with pytest.raises(ValueError, match="lazy target 'fbank' must read 'package.module:attr'"):
        UpstreamSpec(name="f", loader="fbank")


def test_a_method_declares_its_paired_baseline_as_a_field() -> None:
    spec = MethodSpec(name="m", build="x.y:z", baseline={"alpha": 0.0})
    assert baseline_of(spec) == {"alpha": 0.0}
    assert baseline_of(MethodSpec(name="n", build="x.y:z")) is None
    assert baseline_of(serbench.components().methods.get("contrastive_reg")) == {"alpha": 0.0}


def test_harness_options_are_read_and_checked_in_one_place() -> None:
    opts = HarnessOptions.read("m", {"normalize": "speaker", "lr": "0.01", "layer": 3,
                                     "text_encoder": "minilm", "finetune_upstream": False})
    assert opts == HarnessOptions("speaker", "minilm", False, 0.01)
    assert HarnessOptions.read("m", {}) == HarnessOptions("none", None, None, 1e-3)
    with pytest.raises(ConfigError, match="^method 'm': normalize must be none, global or "
                                          "speaker, got 'zscore'$"):
        HarnessOptions.read("m", {"normalize": "zscore"})


def test_the_run_record_leaves_absent_fields_out_and_keeps_the_key_order() -> None:
    failed = RunRecord(run_id="r", status="failed", error="E", spec={"fold": "0"}, options={},
                       budget={}, usage=None, metrics=None, created="t")
    assert list(failed.to_json()) == ["schema", "run_id", "status", "error", "spec", "options",
                                      "budget", "usage", "metrics", "created"]
    simulated = RunRecord(run_id="r", status="ok", spec={}, n_test=3, created="t",
                          extra={"usage": {"steps": 1}, "note": "x"})
    body = simulated.to_json()
    assert body["error"] is None and body["usage"] == {"steps": 1} and list(body)[-1] == "note"


def test_dataset_and_upstream_helpers_are_public() -> None:
    assert {"leave_one_group_out", "check_folds", "file_digests"} <= set(serbench.__all__)


def test_a_prefixed_factory_declares_for_name_as_a_field() -> None:
    from serbench.registry import Registry

    registry: Registry[UpstreamSpec] = Registry("upstream")
    registry.add(UpstreamSpec(name="fb:", loader="serbench_upstreams.fbank:load",
                              for_name="tests.test_toolkit:_fbank_named"), "mine")
    spec = registry.get("fb:wide")
    assert (spec.name, spec.hidden_size) == ("fb:wide", 80)


def _fbank_named(rest: str) -> UpstreamSpec:
    return UpstreamSpec(name=f"fb:{rest}", loader="serbench_upstreams.fbank:load", hidden_size=80)


def test_fine_tuning_helpers_load_the_upstream_and_split_the_learning_rates() -> None:
    from types import SimpleNamespace

    from serbench.nn import finetuned_upstream, pretrained_and_new_adamw

    loads: list[str] = []

    def load() -> torch.nn.Module:
        loads.append("upstream")
        return torch.nn.Linear(3, 3).requires_grad_(False)  # hub weights arrive frozen

    frozen = SimpleNamespace(finetune_upstream=False, load_upstream=load)
    assert finetuned_upstream(frozen) is None and loads == []  # frozen: features from the cache

    model = torch.nn.Module()
    model.upstream = finetuned_upstream(SimpleNamespace(finetune_upstream=True, load_upstream=load))
    model.head = torch.nn.Linear(3, 2)
    assert loads == ["upstream"] and all(p.requires_grad for p in model.upstream.parameters())
    groups = pretrained_and_new_adamw(model, 1e-5, 1e-3).param_groups
    assert [g["lr"] for g in groups] == [1e-5, 1e-3]
    assert [len(g["params"]) for g in groups] == [2, 2]  # weight and bias of each part
    assert groups[0]["params"][0] is model.upstream.weight
