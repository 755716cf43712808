"""The ``fbank`` upstream: shapes, frame counts, mel placement, batching exactness."""

from __future__ import annotations

import math

import torch

from serbench.registry import collect


def _fbank():
    spec = collect().upstreams.get("fbank")
    return spec, spec.loader("cpu")


def test_spec_describes_80_bins_at_100_frames_per_second() -> None:
    spec, module = _fbank()
    assert (spec.num_layers, spec.hidden_size, spec.frame_rate, spec.sample_rate) == (1, 80, 100.0,
                                                                                      16000)
    assert module.revision == "none"
    assert not module.training


def test_frame_counts_follow_25ms_window_10ms_hop() -> None:
    _, module = _fbank()
    lengths = torch.tensor([16000, 8000, 400, 399])
    layers, frames = module(torch.randn(4, 16000), lengths)
    # 1 + (S - 400) // 160, at least one frame for audio shorter than one window
    assert frames.tolist() == [98, 48, 1, 1]
    assert len(layers) == 1 and layers[0].shape == (4, 98, 80)


def test_a_1khz_tone_peaks_in_the_filter_centred_on_1000_mel() -> None:
    _, module = _fbank()
    t = torch.arange(16000) / 16000
    tone = torch.sin(2 * math.pi * 1000 * t)[None]
    (feats,), _ = module(tone, torch.tensor([16000]))
    # HTK mel(1000 Hz) = 1000; centres equally spaced from mel(20 Hz) to mel(8000 Hz), 81 steps
    low, high = 1127 * math.log1p(20 / 700), 1127 * math.log1p(8000 / 700)
    expected = round((1000 - low) / ((high - low) / 81)) - 1
    assert expected == 27
    assert feats[0, 10:90].argmax(dim=-1).eq(expected).all()


def test_batch_equals_each_utterance_alone_whatever_the_padding_holds() -> None:
    _, module = _fbank()
    lengths = torch.tensor([12000, 5000, 1000])
    batch = torch.randn(3, 12000)
    batch[1, 5000:] = 7.0  # garbage padding must not leak into valid frames
    (feats,), frames = module(batch, lengths)
    for i, n in enumerate(lengths.tolist()):
        (alone,), f = module(batch[i : i + 1, :n], lengths[i : i + 1])
        assert f.item() == frames[i].item()
        torch.testing.assert_close(feats[i, : f.item()], alone[0], atol=1e-4, rtol=1e-5)
        assert feats[i, f.item():].eq(0).all()
