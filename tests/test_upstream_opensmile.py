"""openSMILE upstreams on real EmoDB audio: dimensions, frame counts, what the numbers mean."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf
import torch

from serbench.registry import collect
from serbench.testing import check_upstream


def _wave(emodb_root: Path, name: str) -> torch.Tensor:
    audio, rate = sf.read(emodb_root / "wav" / name, dtype="float32")
    assert rate == 16000
    return torch.from_numpy(audio)


def _batch(waves: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(w) for w in waves])
    return torch.nn.utils.rnn.pad_sequence(waves, batch_first=True), lengths


def test_egemaps_mean_pitch_separates_a_male_and_a_female_speaker(emodb_root: Path) -> None:
    module = collect().upstreams.get("egemaps").loader("cpu")
    male, female = _wave(emodb_root, "03a01Nc.wav"), _wave(emodb_root, "08a01Na.wav")
    (feats,), frames = module(*_batch([male, female]))
    assert feats.shape == (2, 1, 88) and frames.tolist() == [1, 1]
    # feature 0 is F0 in semitones above 27.5 Hz: about 116 Hz for speaker 03, 187 Hz for 08
    f0_hz = 27.5 * 2 ** (feats[:, 0, 0] / 12)
    assert 90 < f0_hz[0] < 140 and 160 < f0_hz[1] < 230


def test_egemaps_lld_gives_25_descriptors_per_10ms(emodb_root: Path) -> None:
    module = collect().upstreams.get("egemaps_lld").loader("cpu")
    wave = _wave(emodb_root, "03a01Nc.wav")  # 25,780 samples
    (feats,), frames = module(*_batch([wave, wave[:4000]]))
    # one 50 ms frame every 10 ms: 1 + (25780 - 800) // 160 = 157, 1 + (4000 - 800) // 160 = 21
    assert frames.tolist() == [157, 21]
    assert feats.shape == (2, 157, 25)
    assert feats[1, 21:].eq(0).all()


def test_opensmile_upstreams_pass_the_conformance_checks() -> None:
    upstreams = collect().upstreams
    for name, dims in (("egemaps", 88), ("compare2016", 6373)):
        spec = upstreams.get(name)
        assert spec.hidden_size == dims and spec.frame_rate == 0
        failed = [c for c in check_upstream(spec) if not c.ok]
        assert not failed, failed
