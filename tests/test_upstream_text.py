"""Text encoders: the packaged MiniLM loads offline and means what it says; hub ones fail clearly"""

from __future__ import annotations

import pytest
import torch

from serbench.registry import collect
from serbench.specs import ConfigError
from serbench.testing import check_upstream


@pytest.fixture(scope="module")
def minilm() -> torch.nn.Module:
    return collect().upstreams.get("minilm").loader("cpu")


def _mean_pooled(module: torch.nn.Module, texts: list[str]) -> torch.Tensor:
    with torch.inference_mode():
        layers, lengths = module(texts)
    pooled = layers[-1].sum(1) / lengths[:, None]
    return torch.nn.functional.normalize(pooled, dim=-1)


def test_minilm_is_a_384_dim_mean_pooled_text_encoder_that_passes_the_checks() -> None:
    spec = collect().upstreams.get("minilm")
    assert (spec.modality, spec.num_layers, spec.hidden_size, spec.pooling) == ("text", 7, 384,
                                                                                "mean")
    checks = check_upstream(spec)
    assert [c.name for c in checks if not c.ok] == [], checks


def test_minilm_embeddings_put_paraphrases_close_together(minilm: torch.nn.Module) -> None:
    assert minilm.revision.startswith("sha256:")
    emb = _mean_pooled(minilm, ["I am so happy today.", "Today I feel really joyful.",
                                "The train to Berlin leaves at noon."])
    paraphrase, unrelated = float(emb[0] @ emb[1]), float(emb[0] @ emb[2])
    assert paraphrase > 0.5 > unrelated + 0.3


def test_token_lengths_count_the_special_tokens(minilm: torch.nn.Module) -> None:
    with torch.inference_mode():
        layers, lengths = minilm(["hello", "hello world"])
    # [CLS] hello [SEP] and [CLS] hello world [SEP]
    assert lengths.tolist() == [3, 4]
    assert layers[0][0, 3:].eq(0).all()


def test_hf_prefix_loads_a_bert_like_folder_as_a_text_encoder() -> None:
    from serbench_upstreams.catalog import minilm_folder

    spec = collect().upstreams.get(f"hf:{minilm_folder()}")
    assert (spec.modality, spec.num_layers, spec.hidden_size) == ("text", 7, 384)


def test_hub_text_encoders_offline_say_how_to_fetch_them() -> None:
    module_loader = collect().upstreams.get("roberta_base").loader
    with pytest.raises(ConfigError, match=r"`hf download FacebookAI/roberta-base "
                                          r"--revision e2da8e2f811d1448a5b465c236feacd80ffbac7b`"):
        module_loader("cpu")
