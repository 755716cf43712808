"""Whisper's encoder as an upstream: log-mel input in 30 s windows, 50 frames per second.

The encoder only takes exactly 30 s of log-mel (3000 frames -> 1500 encoder frames), so audio is
cut into 30 s windows, each padded by ``WhisperFeatureExtractor`` as in training, and only the
``ceil(samples / 320)`` frames that cover real audio are kept, window after window. Windows never
see each other, so a batch gives each utterance's own result.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ._common import resolve_device
from .hub import model_dir, revision_of

SAMPLE_RATE = 16000
WINDOW = 30 * SAMPLE_RATE
SAMPLES_PER_FRAME = 320


class WhisperEncoderUpstream(nn.Module):
    """``forward(waveforms (B, S), lengths (B,)) -> (L + 1 states (B, T, D), frames (B,))``."""

    def __init__(self, encoder: nn.Module, extractor: Any, revision: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.extractor = extractor
        self.revision = revision

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor
                ) -> tuple[list[torch.Tensor], torch.Tensor]:
        signals = waveforms.detach().float().cpu().numpy()
        windows, owner, keep = [], [], []
        for i, n in enumerate(lengths.tolist()):
            for start in range(0, max(int(n), 1), WINDOW):
                piece = signals[i, start : min(int(n), start + WINDOW)]
                windows.append(piece)
                owner.append(i)
                keep.append(max(1, math.ceil(len(piece) / SAMPLES_PER_FRAME)))
        param = next(self.encoder.parameters())
        mel = self.extractor(windows, sampling_rate=SAMPLE_RATE, return_tensors="pt",
                             device=str(param.device)).input_features
        states = self.encoder(mel.to(param.device, param.dtype), output_hidden_states=True)
        frames = torch.zeros(len(signals), dtype=torch.long)
        for i, k in zip(owner, keep, strict=True):
            frames[i] += k
        layers = []
        for h in states.hidden_states:
            items: list[list[torch.Tensor]] = [[] for _ in range(len(signals))]
            for w, (i, k) in enumerate(zip(owner, keep, strict=True)):
                items[i].append(h[w, :k])
            layers.append(nn.utils.rnn.pad_sequence([torch.cat(p) for p in items],
                                                    batch_first=True))
        return layers, frames.to(param.device)


def load(ref: str, revision: str | None, device: Any) -> WhisperEncoderUpstream:
    """Load the encoder of a Whisper checkpoint (hub id or folder) with its feature extractor."""
    import transformers as tf

    tf.utils.logging.disable_progress_bar()  # a bar per run drowns serbench's own output

    folder = model_dir(ref, revision)
    config = tf.WhisperConfig.from_pretrained(folder)
    config.encoder_layerdrop = 0.0
    encoder = tf.WhisperModel.from_pretrained(folder, config=config).get_encoder()
    extractor = tf.WhisperFeatureExtractor.from_pretrained(folder)
    module = WhisperEncoderUpstream(encoder, extractor, revision_of(folder))
    return module.to(resolve_device(device)).eval()
