"""WavLM, HuBERT, wav2vec 2.0 and data2vec-audio encoders through ``transformers``.

Padding is where batched SSL features usually go wrong. The valid frames of an utterance must be
what the model gives for that utterance alone, its training condition:

- ``do_normalize`` (from the checkpoint's feature-extractor config) standardises each utterance
  over its own valid samples;
- feature encoders with ``feat_extract_norm == "group"`` (wav2vec2-base, hubert-base, wavlm-base)
  normalise each channel over *time*, so padding would shift their statistics: their convolutions
  run on each utterance's own samples. Layer-norm encoders are per frame, so they run batched;
- the transformer gets the frame mask, so no valid frame attends to padding. For an unpadded
  utterance this is exactly the mask-free forward those checkpoints were trained with.

``layerdrop`` is set to 0 (dropping layers changes the number of hidden states), and the module
is returned in ``eval()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._common import resolve_device, sample_mask, zero_padding
from .hub import model_dir, read_json, revision_of

FAMILIES = ("wavlm", "hubert", "wav2vec2", "data2vec-audio")


class PerUtterance:
    """Replaces a submodule's ``forward`` so that it sees one utterance at a time.

    For stages whose result depends on padding: group-norm convolutions (statistics over time)
    and data2vec's stacked positional convolutions (the second one reads the first one's output
    at padded frames). The input is sliced on dim 1 to each ``lengths`` entry, outputs are
    zero-padded on ``out_dim`` to ``total(width)``. Module tree and ``state_dict`` do not change.
    """

    def __init__(self, module: nn.Module, out_dim: int, total: Any = None) -> None:
        self.forward = module.forward
        self.out_dim = out_dim
        self.total = total or (lambda width: width)
        self.lengths: list[int] | None = None
        module.forward = self

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        lengths, width = self.lengths, inputs.shape[1]
        if lengths is None or all(n == width for n in lengths):
            return self.forward(inputs)
        total = int(self.total(width))
        outs = [self.forward(inputs[i : i + 1, :n]) for i, n in enumerate(lengths)]
        pads = [[0, 0] * (o.dim() - 1 - self.out_dim % o.dim()) + [0, total - o.shape[self.out_dim]]
                for o in outs]
        return torch.cat([nn.functional.pad(o, p) for o, p in zip(outs, pads, strict=True)])


class SSLEncoder(nn.Module):
    """``forward(waveforms (B, S), lengths (B,)) -> (L + 1 states (B, T, D), frames (B,))``."""

    def __init__(self, model: Any, do_normalize: bool, revision: str) -> None:
        super().__init__()
        self.model = model
        self.do_normalize = do_normalize
        self.revision = revision
        self.min_samples = receptive_field(model.config)
        self.conv = self.pos_conv = None
        if getattr(model.config, "feat_extract_norm", "layer") == "group":
            self.conv = PerUtterance(model.feature_extractor, -1,
                                     model._get_feat_extract_output_lengths)
        if len(getattr(model.encoder.pos_conv_embed, "layers", ())) > 1:
            self.pos_conv = PerUtterance(model.encoder.pos_conv_embed, 1)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor
                ) -> tuple[list[torch.Tensor], torch.Tensor]:
        lengths = lengths.to(waveforms.device)
        x = zero_padding(waveforms.float(), lengths)
        if x.shape[1] < self.min_samples:  # shorter than one frame: zero-padded to one frame
            x = nn.functional.pad(x, (0, self.min_samples - x.shape[1]))
        lengths = lengths.clamp(min=self.min_samples)
        mask = sample_mask(lengths, x.shape[1])
        if self.do_normalize:
            n = lengths[:, None].clamp(min=1)
            mean = x.sum(1, keepdim=True) / n
            var = ((x - mean) ** 2 * mask).sum(1, keepdim=True) / n
            x = (x - mean) / torch.sqrt(var + 1e-7) * mask
        frames = self.model._get_feat_extract_output_lengths(lengths).long()
        self._set_lengths(lengths.tolist(), frames.tolist())
        try:
            out = self.model(x, attention_mask=mask.long(), output_hidden_states=True)
        finally:
            self._set_lengths(None, None)
        valid = sample_mask(frames, out.hidden_states[0].shape[1])[..., None]
        return [h * valid for h in out.hidden_states], frames


    def _set_lengths(self, samples: list[int] | None, frames: list[int] | None) -> None:
        if self.conv is not None:
            self.conv.lengths = samples
        if self.pos_conv is not None:
            self.pos_conv.lengths = frames


def receptive_field(config: Any) -> int:
    """Samples the convolution stack needs for one frame (400 for the usual 320-sample stride)."""
    field = 1
    for kernel, stride in reversed(list(zip(config.conv_kernel, config.conv_stride, strict=True))):
        field = (field - 1) * stride + kernel
    return field


def load_model(folder: Path, family: str, device: Any) -> Any:
    """The bare transformers model with layer drop off, on ``device``, in eval mode."""
    import transformers as tf

    classes = {"wavlm": tf.WavLMModel, "hubert": tf.HubertModel, "wav2vec2": tf.Wav2Vec2Model,
               "data2vec-audio": tf.Data2VecAudioModel}
    config = tf.AutoConfig.from_pretrained(folder)
    config.layerdrop = 0.0
    model = classes[family].from_pretrained(folder, config=config)
    return model.to(resolve_device(device)).eval()


def load(ref: str, revision: str | None, family: str, device: Any) -> SSLEncoder:
    """Load ``ref`` (a hub id or a folder) as an upstream module."""
    folder = model_dir(ref, revision)
    extractor = read_json(folder, "preprocessor_config.json")
    model = load_model(folder, family, device)
    encoder = SSLEncoder(model, bool(extractor.get("do_normalize", True)), revision_of(folder))
    return encoder.to(resolve_device(device)).eval()
