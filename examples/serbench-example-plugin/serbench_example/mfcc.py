"""MFCCs in plain torch: Hann-windowed power spectrum, mel filterbank, log, DCT-II."""

from __future__ import annotations

import math

import torch


def _mel(f: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int) -> torch.Tensor:
    """Triangular filters (n_mels, n_fft // 2 + 1) evenly spaced on the mel scale."""
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges_mel = torch.linspace(0.0, float(_mel(torch.tensor(sample_rate / 2.0))), n_mels + 2)
    edges = 700.0 * (10 ** (edges_mel / 2595.0) - 1.0)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


def dct_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """Orthonormal DCT-II basis (n_in, n_out)."""
    n = torch.arange(n_in, dtype=torch.float32)[:, None]
    k = torch.arange(n_out, dtype=torch.float32)[None, :]
    basis = torch.cos(math.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)
    basis[:, 0] /= math.sqrt(2.0)
    return basis


class MFCC(torch.nn.Module):
    """``forward(waveforms (B, S), lengths (B,)) -> ([ (B, T, n_mfcc) ], frame lengths (B,))``."""

    revision = "none"

    def __init__(self, n_mfcc: int = 20, n_mels: int = 40, sample_rate: int = 16000) -> None:
        super().__init__()
        self.win, self.hop, self.n_fft = 400, 160, 512
        self.register_buffer("window", torch.hann_window(self.win), persistent=False)
        self.register_buffer("fbank", mel_filterbank(n_mels, self.n_fft, sample_rate),
                             persistent=False)
        self.register_buffer("dct", dct_matrix(n_mels, n_mfcc), persistent=False)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[
        list[torch.Tensor], torch.Tensor
    ]:
        if waveforms.shape[1] < self.win:
            waveforms = torch.nn.functional.pad(waveforms, (0, self.win - waveforms.shape[1]))
        frames = waveforms.unfold(1, self.win, self.hop)  # (B, T, win)
        frames = frames - frames.mean(dim=2, keepdim=True)
        spec = torch.fft.rfft(frames * self.window, n=self.n_fft).abs() ** 2
        logmel = torch.log(spec @ self.fbank.T + 1e-6)
        mfcc = logmel @ self.dct
        n_frames = torch.clamp((lengths - self.win) // self.hop + 1, min=1)
        return [mfcc], n_frames
