"""WavLM, HuBERT, wav2vec 2.0 and data2vec-audio encoders through ``transformers``.

Padding is where batched SSL features usually go wrong. The valid frames of an utterance must be
what the model gives for that utterance alone, its training condition:

- ``do_normalize`` (from the checkpoint's feature-extractor config) standardises each utterance
  over its own valid samples;
- feature encoders with ``feat_extract_norm == "group"`` (wav2vec2-base, hubert-base, wavlm-base)
  normalise each channel over *time*, so padding would shift their statistics: those statistics
  are taken over each utterance's valid frames (``ValidFrameGroupNorm``). Layer-norm encoders
  are per frame and need nothing;
- data2vec-audio's stacked positional convolutions get their padded frames zeroed between layers;
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


class ValidFrameGroupNorm:
    """``forward`` of a group-norm encoder's first convolution, with statistics per utterance.

    ``GroupNorm`` there normalises each channel over *time*: over a padded batch its statistics
    would include the padding. Here they cover each utterance's valid frames only, so the batch
    runs at once and gives each utterance's own result. The later convolutions have no
    normalisation and no padding, so their valid frames read valid frames only.
    """

    def __init__(self, layer: nn.Module) -> None:
        self.layer = layer
        self.lengths: torch.Tensor | None = None  # samples
        layer.forward = self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        layer, lengths = self.layer, self.lengths
        h = layer.conv(x)
        norm = layer.layer_norm
        if lengths is None or bool((lengths == x.shape[-1]).all()):
            return layer.activation(norm(h))
        kernel, stride = layer.conv.kernel_size[0], layer.conv.stride[0]
        frames = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
        # the library's fused kernel on each utterance's valid frames: a few passes over the
        # activations, where masked statistics over the padded batch took ten
        out = torch.zeros_like(h)  # a new tensor: autograd keeps h for the norm's backward
        for j, n in enumerate(frames.clamp(1, h.shape[-1]).tolist()):
            out[j, :, :n] = norm(h[j : j + 1, :, :n])[0]
        return layer.activation(out)


class MaskedPositionalConvs:
    """``forward`` of a stack of positional convolutions (data2vec-audio), padding-exact.

    Each convolution pads with zeros past an utterance's end; in a batch the previous layer's
    output sits there instead, so padded frames are zeroed again between layers.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.frames: torch.Tensor | None = None
        module.forward = self

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        h = hidden.transpose(1, 2)
        mask = None
        if self.frames is not None:
            mask = sample_mask(self.frames, h.shape[-1])[:, None, :].to(h.dtype)
        for layer in self.module.layers:
            h = layer(h)
            if mask is not None:
                h = h * mask
        return h.transpose(1, 2)


class SSLEncoder(nn.Module):
    """``forward(waveforms (B, S), lengths (B,)) -> (L + 1 states (B, T, D), frames (B,))``."""

    def __init__(self, model: Any, do_normalize: bool, revision: str) -> None:
        super().__init__()
        self.model = model
        self.do_normalize = do_normalize
        self.revision = revision
        self.min_samples = receptive_field(model.config)
        self.conv: ValidFrameGroupNorm | None = None
        self.pos_conv: MaskedPositionalConvs | None = None
        if getattr(model.config, "feat_extract_norm", "layer") == "group":
            self.conv = ValidFrameGroupNorm(model.feature_extractor.conv_layers[0])
        if len(getattr(model.encoder.pos_conv_embed, "layers", ())) > 1:
            self.pos_conv = MaskedPositionalConvs(model.encoder.pos_conv_embed)

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
        self._set_lengths(lengths, frames)
        try:
            out = self.model(x, attention_mask=mask.long(), output_hidden_states=True)
        finally:
            self._set_lengths(None, None)
        valid = sample_mask(frames, out.hidden_states[0].shape[1])[..., None]
        return [h * valid for h in out.hidden_states], frames

    def _set_lengths(self, samples: torch.Tensor | None, frames: torch.Tensor | None) -> None:
        if self.conv is not None:
            self.conv.lengths = samples
        if self.pos_conv is not None:
            self.pos_conv.frames = frames


def receptive_field(config: Any) -> int:
    """Samples the convolution stack needs for one frame (400 for the usual 320-sample stride)."""
    field = 1
    for kernel, stride in reversed(list(zip(config.conv_kernel, config.conv_stride, strict=True))):
        field = (field - 1) * stride + kernel
    return field


def load_model(folder: Path, family: str, device: Any) -> Any:
    """The bare transformers model with layer drop off, on ``device``, in eval mode."""
    import transformers as tf

    tf.utils.logging.disable_progress_bar()  # a bar per run drowns serbench's own output

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
