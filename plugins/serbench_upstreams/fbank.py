"""80-bin log-mel filterbank, 25 ms window, 10 ms hop: the classic weight-free front end.

Kaldi's recipe in pure torch (no torchaudio): per-frame DC removal, pre-emphasis 0.97, Povey
window, 512-point power spectrum, triangular filters on the HTK mel scale from 20 Hz to Nyquist,
natural log floored at float32 epsilon. Frames never read past an utterance's last sample, so a
batch gives exactly the per-utterance result on valid frames.
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import resolve_device, zero_padding

SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
N_FFT = 512
N_MELS = 80
LOW_HZ = 20.0
PREEMPHASIS = 0.97


def _mel(hz: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log1p(hz / 700.0)


def mel_filters(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE,
                low_hz: float = LOW_HZ) -> torch.Tensor:
    """``(n_fft // 2 + 1, n_mels)`` triangular filters, equally spaced on the mel scale."""
    bins = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft
    mel_bins = _mel(bins)
    low, high = _mel(torch.tensor(low_hz, dtype=torch.float64)), _mel(
        torch.tensor(sample_rate / 2, dtype=torch.float64))
    edges = torch.linspace(float(low), float(high), n_mels + 2, dtype=torch.float64)
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    up = (mel_bins[:, None] - left[None, :]) / (centre - left)[None, :]
    down = (right[None, :] - mel_bins[:, None]) / (right - centre)[None, :]
    return torch.clamp(torch.minimum(up, down), min=0.0).float()


def num_frames(lengths: torch.Tensor) -> torch.Tensor:
    """Frames of 400 samples every 160 that fit in the audio; at least one (short audio padded)."""
    return torch.clamp(torch.div(lengths - WINDOW, HOP, rounding_mode="floor") + 1, min=1)


class Fbank(nn.Module):
    """``forward(waveforms (B, S), lengths (B,)) -> ([log-mel (B, T, 80)], frames (B,))``."""

    revision = "none"

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("filters", mel_filters(), persistent=False)
        window = torch.hann_window(WINDOW, periodic=False, dtype=torch.float64) ** 0.85
        self.register_buffer("window", window.float(), persistent=False)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor
                ) -> tuple[list[torch.Tensor], torch.Tensor]:
        waveforms = zero_padding(waveforms.float(), lengths)
        if waveforms.shape[1] < WINDOW:
            waveforms = nn.functional.pad(waveforms, (0, WINDOW - waveforms.shape[1]))
        frames = waveforms.unfold(1, WINDOW, HOP)  # (B, T, 400)
        frames = frames - frames.mean(dim=-1, keepdim=True)
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = (frames - PREEMPHASIS * previous) * self.window
        power = torch.fft.rfft(frames, n=N_FFT).abs().pow(2)
        energies = power @ self.filters
        feats = torch.log(torch.clamp(energies, min=torch.finfo(torch.float32).eps))
        frame_lengths = num_frames(lengths.to(feats.device))
        feats = feats * (torch.arange(feats.shape[1], device=feats.device)[None, :, None]
                         < frame_lengths[:, None, None])
        return [feats], frame_lengths


def load(device: object = None) -> Fbank:
    """The loader of the ``fbank`` spec: nothing to download, no parameters."""
    return Fbank().to(resolve_device(device)).eval()
