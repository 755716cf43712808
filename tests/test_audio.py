"""Decoding, mixing, resampling and the rejection of unusable audio files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from serbench.data.audio import AudioError, audio_duration, load_audio
from serbench.specs import ConfigError


def test_real_emodb_file_is_float32_mono_at_its_rate(emodb_root: Path) -> None:
    path = emodb_root / "wav" / "03a01Fa.wav"
    raw, rate = sf.read(str(path), dtype="float32")
    wave = load_audio(path, 16000)
    assert rate == 16000 and wave.dtype == np.float32 and wave.ndim == 1
    assert np.array_equal(wave, raw)  # no resampling at the native rate
    assert audio_duration(path) == pytest.approx(30372 / 16000)
    assert load_audio(path, 8000).shape == (15186,)


def test_resampling_keeps_the_pitch(tmp_path: Path) -> None:
    t = np.arange(48000) / 48000
    path = tmp_path / "tone.wav"
    sf.write(str(path), (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), 48000,
             subtype="FLOAT")
    wave = load_audio(path, 16000)
    assert wave.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(wave))
    assert np.argmax(spectrum) == 1000  # 1 Hz bins over one second


def test_stereo_is_mixed_to_the_mean_of_its_channels(tmp_path: Path) -> None:
    left = np.linspace(-0.5, 0.5, 800, dtype=np.float32)
    right = np.full(800, 0.25, dtype=np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(str(path), np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    assert np.allclose(load_audio(path, 16000), (left + right) / 2, atol=1e-7)


def _wav(path: Path, samples: int = 1600) -> Path:
    sf.write(str(path), np.zeros(samples, dtype=np.float32), 16000, subtype="PCM_16")
    return path


def test_truncated_wav_is_rejected_naming_the_file(tmp_path: Path) -> None:
    full = _wav(tmp_path / "full.wav").read_bytes()  # 44-byte header + 3200 bytes of audio
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full[:1044])
    with pytest.raises(AudioError) as err:
        load_audio(cut, 16000)
    assert str(err.value) == (
        f"{cut}: truncated: the header announces 3200 bytes of audio but the file holds 1000; "
        f"copy or download it again"
    )
    assert err.value.path == str(cut)
    assert isinstance(err.value, ConfigError)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "empty file (0 bytes)"),
        (b"this is not audio at all" * 4, "unreadable audio (Format not recognised.)"),
    ],
)
def test_empty_and_garbage_files(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match="^") as err:
        load_audio(path, 16000)
    assert str(err.value) == f"{path}: {problem}"


def test_header_without_samples_is_rejected(tmp_path: Path) -> None:
    path = _wav(tmp_path / "silent.wav", samples=0)
    with pytest.raises(AudioError) as err:
        load_audio(path, 16000)
    assert str(err.value) == f"{path}: no audio samples (0 frames)"


def test_non_finite_samples_are_rejected(tmp_path: Path) -> None:
    wave = np.zeros(160, dtype=np.float32)
    wave[7] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(str(path), wave, 16000, subtype="FLOAT")
    with pytest.raises(AudioError) as err:
        load_audio(path, 16000)
    assert str(err.value) == f"{path}: contains NaN or infinite samples"


def test_missing_file_and_unreadable_header(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"nowhere\.wav: file not found$"):
        load_audio(tmp_path / "nowhere.wav", 16000)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: empty file \(0 bytes\)$"):
        audio_duration(empty)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF\x00\x00")
    with pytest.raises(AudioError, match=r"junk\.wav: unreadable audio \("):
        audio_duration(junk)


def test_the_header_reader_catches_truncation_too(tmp_path: Path) -> None:
    full = _wav(tmp_path / "full.wav").read_bytes()
    assert audio_duration(tmp_path / "full.wav") == pytest.approx(0.1)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full[:1044])
    with pytest.raises(AudioError, match=r"cut\.wav: truncated: the header announces 3200 bytes"):
        audio_duration(cut)
