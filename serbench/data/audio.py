"""Audio decoding (soundfile), mixing to mono, resampling (soxr) and validation.

Every bad file becomes an :class:`AudioError` that names the file and what is wrong, and carries
the path so the runner can skip and record it under ``--skip-bad-audio``.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from serbench.specs import ConfigError

MAX_AMPLITUDE = 100.0  # float audio may overshoot [-1, 1] a little; 40 dB beyond is damage


class AudioError(ConfigError):
    """An audio file that cannot be used: unreadable, truncated, empty or non-finite."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def _wav_truncated(path: Path) -> str | None:
    """Describe a RIFF/WAVE file whose ``data`` chunk is shorter than its header says.

    libsndfile silently decodes what is there, so a half-copied file would pass unnoticed.
    Streaming writers put 0 or 0xFFFFFFFF as the size: those are not checked.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return None
        fmt = "<I" if head[:4] == b"RIFF" else ">I"
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            (length,) = struct.unpack(fmt, chunk[4:8])
            if chunk[:4] == b"data":
                if length in (0, 0xFFFFFFFF):
                    return None
                available = size - pos - 8
                if available < length:
                    return (
                        f"truncated: the header announces {length} bytes of audio but the file "
                        f"holds {available}; copy or download it again"
                    )
                return None
            pos += 8 + length + (length & 1)
    return None


def audio_duration(path: str | Path) -> float:
    """Seconds of audio from the header only; also catches empty and truncated files early."""
    import soundfile as sf

    p = _existing(path)
    try:
        truncated = _wav_truncated(p)
        info = sf.info(str(p))
    except Exception as exc:  # libsndfile's errors carry no useful type
        raise AudioError(p, f"unreadable audio ({_reason(exc)})") from exc
    if truncated:
        raise AudioError(p, truncated)
    if info.samplerate <= 0:
        raise AudioError(p, "header has no sample rate")
    return info.frames / info.samplerate


def _existing(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise AudioError(p, "file not found")
    if p.stat().st_size == 0:
        raise AudioError(p, "empty file (0 bytes)")
    return p


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode ``path`` to float32 mono at ``sample_rate`` Hz, rejecting unusable audio."""
    import soundfile as sf
    import soxr

    p = _existing(path)
    try:
        truncated = _wav_truncated(p)
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(p, f"unreadable audio ({_reason(exc)})") from exc
    if truncated:
        raise AudioError(p, truncated)
    if data.shape[0] == 0:
        raise AudioError(p, "no audio samples (0 frames)")
    if not np.isfinite(data).all():
        raise AudioError(p, "contains NaN or infinite samples")
    peak = float(np.abs(data).max())
    if peak > MAX_AMPLITUDE:
        raise AudioError(p, f"samples reach {peak:.3g}, far outside [-1, 1]: the file is "
                         "damaged or was written unscaled; rescale it to [-1, 1]")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    # libsndfile repeats the path: keep only what is wrong
    if ":" in text and "Error opening" in text:
        text = text.rsplit(":", 1)[1].strip()
    return text or type(exc).__name__
