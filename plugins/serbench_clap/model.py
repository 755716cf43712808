"""The two-tower Emo-CLAP model shared by ``emo_clap``, ``ml_gemo`` and ``sl_gemo``.

Audio tower: upstream hidden state (the last by default, as the paper) -> masked mean ->
Linear -> ReLU -> Linear -> L2 norm. Text tower: a registered text encoder's last hidden state,
pooled its own way (first token for RoBERTa, mean for MiniLM) -> the same projection shape.
The class prompts are the only texts, so a frozen text encoder runs once at build time and only
its pooled prompt features are kept; the projection on top still trains.
"""

from __future__ import annotations

import torch
from torch import nn

from serbench import Batch, BuildContext, ConfigError
from serbench.nn import (
    LayerSelect,
    finetuned_upstream,
    masked_mean,
    pretrained_and_new_adamw,
    upstream_hidden,
)

from . import losses
from .prompts import class_prompts


def projection(dim_in: int, dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, dim), nn.ReLU(), nn.Linear(dim, dim))


def sentence_features(encoder: nn.Module, texts: list[str], pooling: str) -> torch.Tensor:
    """``(N, D)``: the encoder's last hidden state, first token or mean over valid tokens."""
    hidden, lengths = encoder(texts)
    last = hidden[-1].float()
    return last[:, 0] if pooling == "first" else masked_mean(last, lengths)


class Clap(nn.Module):
    """Audio and text towers, two learnable log-temperatures, and one of the three losses."""

    def __init__(self, ctx: BuildContext, variant: str, name: str) -> None:
        super().__init__()
        opts = ctx.options
        self.variant, self.name = variant, name
        self.target_norm = str(opts["target_norm"])
        if self.target_norm not in losses.TARGET_NORMS:
            raise ConfigError(f"method {name}: option target_norm must be rowsum or softmax, got "
                              f"{self.target_norm!r}")
        self.alpha_e = float(opts.get("alpha_e", 1.0))
        if not 0.0 <= self.alpha_e <= 1.0:
            raise ConfigError(f"method {name}: option alpha_e must be in [0, 1], got "
                              f"{self.alpha_e!r}")
        self.lr, self.upstream_lr = float(opts["lr"]), float(opts["upstream_lr"])
        dim = int(opts["proj_dim"])

        self.upstream = finetuned_upstream(ctx)
        self.layers = LayerSelect(ctx.upstream.num_layers, opts["layer"], name)
        self.audio_proj = projection(ctx.upstream.hidden_size, dim)

        text_spec = ctx.text_encoder(str(opts["text_encoder"]))
        if text_spec.modality != "text":
            raise ConfigError(f"method {name}: option text_encoder {text_spec.name!r} is an "
                              f"{text_spec.modality} upstream, not a text encoder")
        self.pooling = text_spec.pooling
        self.prompts = class_prompts(ctx.labels, str(opts["prompt"]), name)
        encoder = text_spec.loader(ctx.device)
        self.text_encoder: nn.Module | None = None
        if opts["finetune_text"]:
            self.text_encoder = encoder.requires_grad_(True)
        else:
            with torch.no_grad():
                cached = sentence_features(encoder.eval(), self.prompts, self.pooling)
            self.register_buffer("prompt_features", cached.detach().clone())
        self.text_proj = projection(text_spec.hidden_size, dim)

        init = torch.tensor(losses.LOG_SCALE_INIT)
        self.log_scale_a = nn.Parameter(init.clone())
        self.log_scale_t = nn.Parameter(init.clone())

    def audio_embeddings(self, batch: Batch) -> torch.Tensor:
        hidden, lengths = upstream_hidden(self.upstream, batch)
        pooled = masked_mean(self.layers(hidden, batch.layers), lengths)
        return nn.functional.normalize(self.audio_proj(pooled), dim=-1)

    def class_embeddings(self) -> torch.Tensor:
        """``(C, P)``: each class prompt through the (possibly fine-tuned) text tower."""
        if self.text_encoder is None:
            features = self.prompt_features
        else:
            features = sentence_features(self.text_encoder, self.prompts, self.pooling)
        return nn.functional.normalize(self.text_proj(features), dim=-1)

    def loss(self, batch: Batch) -> torch.Tensor:
        if self.variant != "emo" and batch.genders is None:
            raise ValueError(f"method {self.name} needs the speakers' genders, the batch has none")
        audio = self.audio_embeddings(batch).float()
        text = self.class_embeddings()[batch.labels].float()
        # the B x B logits and the KL terms are cheap: keep them in float32 under bf16 autocast
        with torch.autocast(audio.device.type, enabled=False):
            c_a, c_t = losses.logits(audio, text, self.log_scale_a, self.log_scale_t)
            if self.variant == "emo":
                return losses.emo_clap(c_a, c_t, batch.labels, self.target_norm)
            mix = losses.ml_gemo if self.variant == "ml" else losses.sl_gemo
            return mix(c_a, c_t, batch.labels, batch.genders, self.alpha_e, self.target_norm)

    def predict(self, batch: Batch) -> torch.Tensor:
        """Cosine similarity of each utterance with each class prompt."""
        return self.audio_embeddings(batch) @ self.class_embeddings().T

    @torch.no_grad()
    def clamp_temperatures(self) -> None:
        """Keep the stored log-temperatures in ``[0, log 100]`` (CLIP clamps after each step)."""
        for p in (self.log_scale_a, self.log_scale_t):
            p.clamp_(0.0, losses.LOG_SCALE_MAX)

    def configure_optimizer(self) -> torch.optim.Optimizer:
        """Pretrained encoders at ``upstream_lr``; projections, layer weights and temperatures at
        ``lr``; the temperatures are clamped after every step."""
        optimizer = pretrained_and_new_adamw(self, self.upstream_lr, self.lr,
                                             ("upstream.", "text_encoder."))
        optimizer.register_step_post_hook(lambda *_: self.clamp_temperatures())
        return optimizer


def build(ctx: BuildContext, variant: str, name: str) -> Clap:
    return Clap(ctx, variant, name).to(ctx.device)


def build_emo_clap(ctx: BuildContext) -> Clap:
    return build(ctx, "emo", "emo_clap")


def build_ml_gemo(ctx: BuildContext) -> Clap:
    return build(ctx, "ml", "ml_gemo")


def build_sl_gemo(ctx: BuildContext) -> Clap:
    return build(ctx, "sl", "sl_gemo")
