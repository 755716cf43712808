"""The feature cache holds what a plan reads: every entry keeps the pooled statistics of every
layer, frames only of the layers frame-reading methods read, and a later plan adds layers to the
same entry; a run reads the same numbers from a partial entry as from a full one.

Real parts throughout: a tiny random WavLM saved with ``save_pretrained`` and loaded through
``hf:<dir>`` (3 hidden states of 32 dims), the tutorial's ``mini_emodb`` (32 real EmoDB files),
``serbench run`` in process, and the cache and results folders on disk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from serbench.cli import main
from serbench.data.features import list_entries
from serbench.nn import LayerSelect
from serbench.registry import collect
from serbench.run.planning import make_plan
from serbench.testing import tiny_transformers_model


@pytest.fixture(scope="module")
def wavlm(tmp_path_factory: pytest.TempPathFactory) -> str:
    return "hf:" + str(tiny_transformers_model("wavlm", tmp_path_factory.mktemp("wavlm") / "m"))


def sweep(capsys: pytest.CaptureFixture[str], upstream: str, data_root: Path, results: Path,
          method: str, *options: str) -> dict[str, str]:
    """Run one fold of ``method`` and return {run id: its predictions file's bytes}."""
    args = ["run", "--method", method, "--upstream", upstream, "--dataset", "mini_emodb",
            "--data-root", str(data_root), "--budget", "smoke", "--seeds", "1", "--folds", "03",
            "--results", str(results), "--json", "--quiet"]
    for option in options:
        args += ["--option", option]
    assert main(args) == 0
    runs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["status"] for r in runs] == ["ok"]
    return {r["run_id"]: (results / "runs" / r["run_id"] / "predictions.jsonl").read_text()
            for r in runs}


def entry_state(path: Path) -> tuple[list[int], dict[str, int]]:
    """The entry's frame layers (from meta.json) and the inode of each of its files."""
    meta = json.loads((path / "meta.json").read_text())["body"]
    return meta["frame_layers"], {p.name: os.stat(p).st_ino for p in sorted(path.iterdir())}


def test_pooled_plans_fill_no_frames_and_frame_plans_add_only_their_layers(
        wavlm: str, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERBENCH_CACHE", str(tmp_path / "partial"))
    linear_partial = sweep(capsys, wavlm, data_root, tmp_path / "a", "linear")
    [row] = list_entries()
    path = Path(row["path"])
    layers, files = entry_state(path)
    assert layers == [] and sorted(files) == ["index.i64", "mean.f32", "meta.json", "var.f32"]
    n, dim = row["utterances"], row["dim"]
    assert (n, row["layers"], dim) == (32, 3, 32)
    assert (path / "mean.f32").stat().st_size == n * 3 * dim * 4  # kilobytes per utterance

    mlp_partial = sweep(capsys, wavlm, data_root, tmp_path / "a", "mlp", "layer=1")
    layers, after = entry_state(path)
    assert layers == [1]
    assert sorted(set(after) - set(files)) == ["frames-001.f16"]
    assert all(after[name] == ino for name, ino in files.items() if name != "meta.json")
    [row] = list_entries()
    assert (path / "frames-001.f16").stat().st_size == row["frames"] * dim * 2
    assert main(["cache", "ls"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert "frames of" in listed[0] and listed[2].split()[6] == "1"  # layer 1's frames only

    sweep(capsys, wavlm, data_root, tmp_path / "a", "mlp")  # the weighted sum: every layer
    layers, last = entry_state(path)
    assert layers == [0, 1, 2] and last["frames-001.f16"] == after["frames-001.f16"]
    meta = json.loads((path / "meta.json").read_text())["body"]
    assert [e["layers"] for e in meta["extended"]] == [[1], [0, 2]]
    assert [r["frame_layers"] for r in list_entries()] == [[0, 1, 2]]

    # the same runs on an entry filled whole at once: byte-identical predictions
    monkeypatch.setenv("SERBENCH_CACHE", str(tmp_path / "full"))
    sweep(capsys, wavlm, data_root, tmp_path / "b", "mlp")
    [full] = list_entries()
    assert full["frame_layers"] == [0, 1, 2] and "extended" not in json.loads(
        (Path(full["path"]) / "meta.json").read_text())["body"]
    assert sweep(capsys, wavlm, data_root, tmp_path / "b", "linear") == linear_partial
    assert sweep(capsys, wavlm, data_root, tmp_path / "b", "mlp", "layer=1") == mlp_partial
    for name in ("mean.f32", "var.f32", "index.i64", "frames-001.f16"):
        assert (path / name).read_bytes() == (Path(full["path"]) / name).read_bytes()


def test_a_plan_fills_the_union_of_the_layers_its_methods_read(wavlm: str,
                                                               data_root: Path) -> None:
    comps = collect()

    def layers(methods: list[str], **options: Any) -> tuple[int, ...] | None:
        plan = make_plan(comps, methods=methods, upstreams=[wavlm], dataset="mini_emodb",
                         data_root=data_root, budget="smoke", options=options)
        return plan.frame_layers(wavlm)

    assert layers(["linear", "logreg"]) == ()  # pooled inputs: no frames at all
    assert layers(["linear", "mlp"], layer="-2") == (1,)
    assert layers(["mlp"], layer="last") == (2,)
    assert layers(["mlp", "linear"]) is None  # a weighted sum over frames: every layer


def test_methods_declare_the_layers_they_read() -> None:
    mlp = collect().methods.get("mlp")
    assert mlp.layer_option == "layer"
    assert mlp.layers_read({"layer": "weighted"}, 4) == (0, 1, 2, 3)
    assert mlp.layers_read({"layer": "last"}, 4) == (3,)
    assert mlp.layers_read({"layer": "-4"}, 4) == (0,)
    assert mlp.layers_read({"layer": 2}, 4) == (2,)
    assert mlp.layers_read({"layer": "9"}, 4) == (0, 1, 2, 3)  # refused when the model builds
    prototype = collect().methods.get("prototype")  # declares nothing: reads every layer
    assert prototype.layer_option is None and prototype.layers_read({}, 2) == (0, 1)


def test_layer_select_reads_a_batch_of_only_its_layer() -> None:
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 1, 3, 4)  # layer 2 alone
    pick = LayerSelect(5, "2", "mlp")
    assert torch.equal(pick(x, (2,)), x[:, 0])
    with pytest.raises(ValueError, match=r"layer 2 was selected but the batch holds layers \[3\]"):
        pick(x, (3,))
    with pytest.raises(ValueError, match=r"a weighted sum needs all 5 layers, the batch holds "
                                         r"\[2\]"):
        LayerSelect(5, "weighted", "mlp")(x, (2,))
