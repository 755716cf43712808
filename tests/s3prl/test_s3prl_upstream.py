"""The s3prl path, run for real inside the s3prl environment that .ci/s3prl_env.sh builds.

Skipped where s3prl is not installed (the main environment); that case has its own test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from serbench.registry import collect
from serbench.specs import ConfigError
from serbench.testing import check_upstream, sample_audio, tiny_transformers_model

# ``s3prl.nn``: this folder itself is importable as a namespace package called s3prl
pytest.importorskip("s3prl.nn", reason="s3prl is tested in its own environment (.ci/s3prl_env.sh)")
pytestmark = pytest.mark.s3prl


@pytest.fixture(scope="module")
def hubert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_transformers_model("hubert", tmp_path_factory.mktemp("s3prl") / "hubert")


def test_hf_hubert_custom_with_a_local_folder_passes_every_check(hubert: Path) -> None:
    spec = collect().upstreams.get(f"s3prl:hf_hubert_custom@{hubert}")
    assert (spec.num_layers, spec.hidden_size, spec.frame_rate) == (3, 32, 50.0)
    checks = check_upstream(spec)
    assert [c.name for c in checks if not c.ok] == [], checks
    module = spec.loader("cpu")
    assert not module.training and module.revision.startswith("sha256:")


def test_s3prl_gives_the_hf_path_hidden_states_on_valid_frames(hubert: Path) -> None:
    via_s3prl = collect().upstreams.get(f"s3prl:hf_hubert_custom@{hubert}").loader("cpu")
    via_hf = collect().upstreams.get(f"hf:{hubert}").loader("cpu")
    waves, lengths = sample_audio(16000)
    with torch.inference_mode():
        ours, frames = via_hf(waves, lengths)
        theirs, s3prl_frames = via_s3prl(waves, lengths)
    # s3prl counts ceil(samples / 320) frames and repeats the last one; the convolutions give
    # (samples - 400) // 320 + 1
    assert s3prl_frames.tolist() == [-(-n // 320) for n in lengths.tolist()] == [63, 40, 23]
    assert frames.tolist() == [62, 39, 22]
    for a, b in zip(ours, theirs, strict=True):
        for i, n in enumerate(frames.tolist()):
            torch.testing.assert_close(a[i, :n], b[i, :n], atol=1e-4, rtol=1e-4)


def test_entry_names_are_checked_against_s3prls_hub(hubert: Path) -> None:
    with pytest.raises(ConfigError, match="s3prl has no upstream 'hubert_bse': did you mean"):
        collect().upstreams.get("s3prl:hubert_bse")
    with pytest.raises(ConfigError, match="'hubert_base' downloads a fixed checkpoint"):
        collect().upstreams.get(f"s3prl:hubert_base@{hubert}")
    with pytest.raises(ConfigError, match="'hf_hubert_custom' needs a checkpoint"):
        collect().upstreams.get("s3prl:hf_hubert_custom")
