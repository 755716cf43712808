"""Tiny randomly initialised Hugging Face model folders, so tests exercise the real ``hf:<dir>``
loading path without downloading weights."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from serbench.specs import ConfigError

if TYPE_CHECKING:  # pragma: no cover - typing only
    pass

FAMILIES = ("wavlm", "hubert", "wav2vec2", "data2vec-audio", "whisper")


def tiny_transformers_model(family: str, folder: str | Path, norm: str = "group",
                            seed: int = 0) -> Path:
    """Save a randomly initialised tiny ``family`` model with its feature extractor to ``folder``.

    The convolution strides are the real ones (320 samples per frame), everything else is small.
    ``norm`` is the feature encoder's normalisation (``group`` like the base checkpoints, or
    ``layer`` like the large ones); data2vec-audio has layer norm only, Whisper neither.
    """
    import torch
    import transformers as tf

    folder = Path(folder)
    family = "data2vec-audio" if family == "data2vec" else family
    if family not in FAMILIES:
        raise ConfigError(f"unknown tiny model family {family!r}; choose one of {FAMILIES}")
    torch.manual_seed(seed)
    if family == "whisper":
        config = tf.WhisperConfig(
            vocab_size=64, d_model=32, encoder_layers=2, decoder_layers=1,
            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
            decoder_ffn_dim=64, num_mel_bins=80, max_source_positions=1500,
            max_target_positions=32, pad_token_id=0, bos_token_id=1, eos_token_id=2,
            decoder_start_token_id=3, suppress_tokens=None, begin_suppress_tokens=None,
        )
        tf.WhisperModel(config).save_pretrained(folder)
        tf.WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
        return folder
    common: dict[str, Any] = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, layerdrop=0.1,
        vocab_size=32,
    )
    if family == "data2vec-audio":
        norm = "layer"  # its positional embedding is a stack of small convolutions
        common.update(num_conv_pos_embeddings=2, conv_pos_kernel_size=5)
        config = tf.Data2VecAudioConfig(**common)
        model: Any = tf.Data2VecAudioModel(config)
    else:
        cls = {"wavlm": (tf.WavLMConfig, tf.WavLMModel),
               "hubert": (tf.HubertConfig, tf.HubertModel),
               "wav2vec2": (tf.Wav2Vec2Config, tf.Wav2Vec2Model)}[family]
        extra = {"num_buckets": 32, "max_bucket_distance": 64} if family == "wavlm" else {}
        config = cls[0](feat_extract_norm=norm, do_stable_layer_norm=norm == "layer", **common,
                        **extra)
        model = cls[1](config)
    model.save_pretrained(folder)
    tf.Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
        return_attention_mask=norm == "layer",
    ).save_pretrained(folder)
    return folder
