"""openSMILE feature sets (eGeMAPSv02, ComParE 2016) as upstreams, via the ``opensmile`` package.

openSMILE works on one signal at a time, so a batch is processed item by item on each utterance's
valid samples: the batch result is the per-item result by construction.

openSMILE hands its output to a Python callback through ctypes, which prints and drops any
exception raised inside it. A Ctrl-C landing there would be lost and leave that utterance's features
NaN (a failed run blaming an innocent file), so SIGINT is held while openSMILE runs and delivered
as soon as it returns.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

import torch
from torch import nn

from ._common import resolve_device

SAMPLE_RATE = 16000
MIN_SAMPLES = 800  # eGeMAPS' longest low-level window (50 ms): shorter audio is zero-padded to it

SETS = {
    # name: (feature set, feature level, dims)
    "egemaps": ("eGeMAPSv02", "Functionals", 88),
    "egemaps_lld": ("eGeMAPSv02", "LowLevelDescriptors", 25),
    "compare2016": ("ComParE_2016", "Functionals", 6373),
}


class Smile(nn.Module):
    """``forward(waveforms (B, S), lengths (B,)) -> ([features (B, T, D)], frames (B,))``.

    Functionals give ``T = 1``; low-level descriptors one frame per 10 ms.
    """

    revision = "none"

    def __init__(self, feature_set: str, feature_level: str, dims: int) -> None:
        super().__init__()
        import opensmile

        self.smile = opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, feature_set),
                                     feature_level=getattr(opensmile.FeatureLevel, feature_level))
        self.dims = dims
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)  # follows .to(device)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor
                ) -> tuple[list[torch.Tensor], torch.Tensor]:
        signals = waveforms.detach().float().cpu().numpy()
        feats = []
        for wave, n in zip(signals, lengths.tolist(), strict=True):
            x = wave[: int(n)]
            if x.shape[0] < MIN_SAMPLES:
                x = _pad(x, MIN_SAMPLES)
            with _interrupts_held():
                values = self.smile.process_signal(x, SAMPLE_RATE).to_numpy(dtype="float32")
            feats.append(torch.tensor(values))
        frames = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
        out = nn.utils.rnn.pad_sequence(feats, batch_first=True)
        device = self._anchor.device
        return [out.to(device)], frames.to(device)


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """SIGINT recorded during the block and handed to the previous handler after it (main thread
    only: elsewhere signals never run Python code)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
    if not caught:
        return
    if callable(previous):
        previous(signal.SIGINT, caught[0])
    elif previous != signal.SIG_IGN:
        raise KeyboardInterrupt


def _pad(x: Any, n: int) -> Any:
    import numpy as np

    return np.pad(x, (0, n - x.shape[0]))


def _load(name: str, device: Any) -> Smile:
    return Smile(*SETS[name]).to(resolve_device(device)).eval()


def egemaps(device: Any = None) -> Smile:
    """``UpstreamSpec.loader`` of eGeMAPS v02 functionals."""
    return _load("egemaps", device)


def egemaps_lld(device: Any = None) -> Smile:
    """``UpstreamSpec.loader`` of eGeMAPS v02 low-level descriptors."""
    return _load("egemaps_lld", device)


def compare2016(device: Any = None) -> Smile:
    """``UpstreamSpec.loader`` of ComParE 2016 functionals."""
    return _load("compare2016", device)
