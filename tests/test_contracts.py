"""A plugin that breaks a contract is told which contract, through the commands it would use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from plugin_dists import activate, install_plugin

BROKEN = """
import torch
from serbench import MethodSpec, UpstreamSpec, hookimpl


class ThreeOutputs(torch.nn.Module):
    def forward(self, waves, lengths):
        frames = torch.zeros(waves.shape[0], 5, 4)
        return [frames], lengths // 320, "extra"


class Bad:
    def loss(self, batch):
        return 0.0


@hookimpl
def serbench_register_upstreams(register):
    register(UpstreamSpec(name="three_outputs", loader=lambda device: ThreeOutputs().eval(),
                          num_layers=1, hidden_size=4, frame_rate=50.0, trainable=False))


@hookimpl
def serbench_register_methods(register):
    register(MethodSpec(name="bad_build", build=lambda ctx: Bad(), defaults={"lr": 0.01}))
"""


def serbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "serbench.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_contract_violations_name_the_contract(tmp_path: Path, monkeypatch) -> None:
    activate(install_plugin(tmp_path / "site", "broken-contracts", "contracts",
                            "serbench_test_contracts", BROKEN), monkeypatch)
    up = serbench("validate", "upstream", "three_outputs", "--device", "cpu")
    assert up.returncode == 1
    assert ("FAIL  forward: upstream 'three_outputs': forward must return (hidden_states, "
            "lengths), got a 3-tuple") in up.stdout.splitlines()
    me = serbench("validate", "method", "bad_build", "--device", "cpu")
    assert me.returncode == 1
    assert ("FAIL  build: method 'bad_build': a method's build must return an nn.Module with "
            "loss() and predict(), got Bad without predict()") in me.stdout.splitlines()


def test_a_module_without_revision_passes_with_the_specs(tmp_path: Path, monkeypatch) -> None:
    from serbench.testing import check_upstream

    source = BROKEN.replace('return [frames], lengths // 320, "extra"',
                            "return [frames], torch.clamp(lengths * 50 // 16000, min=1)")
    activate(install_plugin(tmp_path / "site", "fixed-contracts", "contracts",
                            "serbench_test_contracts", source), monkeypatch)
    from serbench import components

    [revision] = [c for c in check_upstream(components().upstreams.get("three_outputs"))
                  if c.name == "revision"]
    assert revision.ok
    assert revision.detail == "no module.revision: runs record the spec's revision 'none'"
