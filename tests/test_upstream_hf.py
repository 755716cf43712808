"""transformers upstreams loaded through ``hf:<dir>`` from tiny random models saved locally."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from serbench.cli import main
from serbench.registry import collect
from serbench.specs import ConfigError
from serbench.testing import check_upstream, sample_audio, tiny_transformers_model

FAMILIES = [("wavlm", "group"), ("hubert", "group"), ("wav2vec2", "group"),
            ("wav2vec2", "layer"), ("data2vec-audio", "layer"), ("whisper", "group")]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("tiny-models")
    return {f"{fam}-{norm}": tiny_transformers_model(fam, base / f"{fam}-{norm}", norm=norm)
            for fam, norm in FAMILIES}


@pytest.mark.parametrize("key", [f"{f}-{n}" for f, n in FAMILIES])
def test_tiny_models_pass_every_conformance_check(tiny: dict[str, Path], key: str) -> None:
    spec = collect().upstreams.get(f"hf:{tiny[key]}")
    assert (spec.num_layers, spec.hidden_size, spec.frame_rate) == (3, 32, 50.0)
    checks = check_upstream(spec)
    assert [c.name for c in checks if not c.ok] == [], checks
    assert len(checks) == 10


@pytest.mark.parametrize("key", ["wav2vec2-group", "data2vec-audio-layer"])
def test_padded_batch_equals_the_bare_model_on_each_unpadded_utterance(
        tiny: dict[str, Path], key: str) -> None:
    import transformers as tf

    module = collect().upstreams.get(f"hf:{tiny[key]}").loader("cpu")
    waves, lengths = sample_audio(16000)
    reference = tf.AutoModel.from_pretrained(tiny[key]).eval()
    with torch.inference_mode():
        layers, frames = module(waves, lengths)
        for i, n in enumerate(lengths.tolist()):
            x = waves[i : i + 1, :n]
            x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)  # do_normalize
            alone = reference(x, output_hidden_states=True).hidden_states
            assert frames[i] == alone[0].shape[1] == (n - 400) // 320 + 1
            for got, want in zip(layers, alone, strict=True):
                torch.testing.assert_close(got[i, : frames[i]], want[0], atol=2e-5, rtol=1e-4)
    # the usual shortcut -- zero-padding without a mask -- is far from that for this model
    padded = torch.zeros_like(waves)
    for i, n in enumerate(lengths.tolist()):
        x = waves[i, :n]
        padded[i, :n] = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)
    with torch.inference_mode():
        naive = reference(padded, output_hidden_states=True).hidden_states
    assert (naive[-1][2, : frames[2]] - layers[-1][2, : frames[2]]).abs().max() > 0.1


def test_audio_shorter_than_one_frame_gets_one_frame_of_zero_padded_audio(
        tiny: dict[str, Path]) -> None:
    module = collect().upstreams.get(f"hf:{tiny['hubert-group']}").loader("cpu")
    assert module.min_samples == 400  # kernels 10,3,3,3,3,2,2 with strides 5,2,2,2,2,2,2
    wave = 0.1 * torch.randn(2, 1000, generator=torch.Generator().manual_seed(1))
    padded = torch.cat([wave[:1, :300], torch.zeros(1, 100)], dim=1)
    with torch.inference_mode():
        layers, frames = module(wave, torch.tensor([300, 1000]))
        alone, one = module(padded, torch.tensor([400]))
    assert frames.tolist() == [1, 2] and one.tolist() == [1]  # (1000 - 400) // 320 + 1 = 2
    torch.testing.assert_close(layers[-1][0, :1], alone[-1][0])


def test_layer_drop_is_off_and_the_module_is_frozen_in_eval(tiny: dict[str, Path]) -> None:
    assert json.loads((tiny["wavlm-group"] / "config.json").read_text())["layerdrop"] == 0.1
    module = collect().upstreams.get(f"hf:{tiny['wavlm-group']}").loader("cpu")
    assert module.model.config.layerdrop == 0.0
    assert not module.training and not module.model.training


def test_fine_tuning_keeps_every_layer_and_reaches_the_first_convolution(
        tiny: dict[str, Path]) -> None:
    module = collect().upstreams.get(f"hf:{tiny['wavlm-group']}").loader("cpu").train()
    waves, lengths = sample_audio(16000)

    def layer_counts() -> set[int]:
        torch.manual_seed(0)
        with torch.no_grad():
            return {len(module(waves, lengths)[0]) for _ in range(10)}

    assert layer_counts() == {3}
    module.model.config.layerdrop = 0.1  # what the checkpoint says: layers go missing
    assert min(layer_counts()) < 3
    module.model.config.layerdrop = 0.0
    layers, frames = module(waves, lengths)
    layers[-1][0, : frames[0]].sum().backward()
    first_conv = module.model.feature_extractor.conv_layers[0].conv.weight
    assert first_conv.grad is not None and bool(first_conv.grad.abs().sum() > 0)


def test_revision_is_a_hash_of_the_weights(tiny: dict[str, Path], tmp_path: Path) -> None:
    spec = collect().upstreams.get(f"hf:{tiny['hubert-group']}")
    first = spec.loader("cpu").revision
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 16
    assert spec.loader("cpu").revision == first
    other = tiny_transformers_model("hubert", tmp_path / "other", seed=1)
    assert collect().upstreams.get(f"hf:{other}").loader("cpu").revision != first
    # the spec carries the same hash, so the feature cache key changes with the weights
    assert spec.revision == first
    assert collect().upstreams.get(f"hf:{other}").revision != first


def test_a_cached_hub_snapshot_records_its_commit(tiny: dict[str, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-hubert"
    shutil.copytree(tiny["hubert-group"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    spec = collect().upstreams.get("hf:someone/tiny-hubert")
    assert spec.num_layers == 3 and spec.source == "transformers:someone/tiny-hubert"
    assert spec.loader("cpu").revision == commit


def test_whisper_keeps_the_frames_of_real_audio_and_windows_long_audio(
        tiny: dict[str, Path]) -> None:
    module = collect().upstreams.get(f"hf:{tiny['whisper-group']}").loader("cpu")
    gen = torch.Generator().manual_seed(0)
    n = 31 * 16000 + 100
    wave = 0.1 * torch.randn(1, n, generator=gen)
    with torch.inference_mode():
        (_, *_, last), frames = module(wave, torch.tensor([n]))
        assert frames.tolist() == [math.ceil(n / 320)] == [1551]
        (*_, first_window), f1 = module(wave[:, :480000], torch.tensor([480000]))
        (*_, rest), f2 = module(wave[:, 480000:], torch.tensor([n - 480000]))
    assert (f1.item(), f2.item()) == (1500, 51)
    torch.testing.assert_close(last[0], torch.cat([first_window[0], rest[0]]))


def test_offline_and_not_cached_is_one_clear_error(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    assert main(["validate", "upstream", "wavlm_large"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"serbench: error: model 'microsoft/wavlm-large' is not in the Hugging Face cache "
        f"({tmp_path / 'empty-hub'}) and cannot be downloaded (HF_HUB_OFFLINE is set): fetch it on "
        "a machine with network with `hf download microsoft/wavlm-large --revision "
        "c1423ed94bb01d80a3f5ce5bc39f6026a0f4828c` and point HF_HOME at that cache, or pass a "
        "local folder as hf:/path/to/model"
    )
    with pytest.raises(ConfigError, match="'facebook/hubert-base-ls960' is not in the Hugging"):
        collect().upstreams.get("hf:facebook/hubert-base-ls960")


def test_a_folder_without_config_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"model folder '{tmp_path}' has no config.json"):
        collect().upstreams.get(f"hf:{tmp_path}")


def test_unsupported_model_types_and_a_bare_prefix_are_explained(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(ConfigError, match=f"hf:{tmp_path}: model type 'vit' is not supported"):
        collect().upstreams.get(f"hf:{tmp_path}")
    assert main(["validate", "upstream", "hf:"]) == 2
    assert capsys.readouterr().err.strip() == (
        "serbench: error: 'hf:' needs a model: use hf:<hub-id> (e.g. hf:microsoft/wavlm-large) "
        "or hf:/path/to/a/save_pretrained/folder")


def test_named_checkpoints_declare_the_superb_layer_counts() -> None:
    ups = collect().upstreams
    expected = {"wavlm_base": (13, 768), "wavlm_large": (25, 1024), "hubert_large": (25, 1024),
                "wav2vec2_base": (13, 768), "data2vec_large": (25, 1024),
                "whisper_base": (7, 512), "whisper_small": (13, 768), "whisper_medium": (25, 1024)}
    for name, shape in expected.items():
        spec = ups.get(name)
        assert (spec.num_layers, spec.hidden_size, spec.frame_rate) == (*shape, 50.0), name
