"""The GMP-TL model: one network whose loss changes with the stage the training loop announces."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from serbench import Batch, BuildContext, ConfigError
from serbench.nn import (
    BudgetExhausted,
    LayerSelect,
    finetuned_upstream,
    masked_mean,
    pretrained_and_new_adamw,
    upstream_hidden,
)

from . import losses
from .kmeans import Lloyd, assign

NAME = "gmp_tl"


def valid_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """``(B, T)`` true on each row's valid frames."""
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]


class ConvBlock(nn.Module):
    """LayerNorm → depthwise Conv1d over time → Linear → GELU, added back to its input.

    Depthwise-separable, so a block costs about one ``Linear(dim, dim)`` per frame: it runs on
    a CPU at 100 frames per second of audio.
    """

    def __init__(self, dim: int, kernel: int = 5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.mix = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local = self.conv(self.norm(x).transpose(1, 2)).transpose(1, 2)
        return x + nn.functional.gelu(self.mix(local))


class FrameEncoder(nn.Module):
    """The trainable frame encoder over a frozen upstream: projection, then residual conv blocks.

    Padded frames are zeroed after every layer, so the conv of a valid frame sees the same zeros
    an utterance alone would get from the convolution's own padding.
    """

    def __init__(self, dim_in: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.project = nn.Linear(dim_in, hidden)
        self.blocks = nn.ModuleList(ConvBlock(hidden) for _ in range(layers))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
        keep = valid_mask(lengths.to(x.device), x.shape[1]).unsqueeze(-1).to(x.dtype)
        h = self.project(x) * keep
        states = [h]
        for block in self.blocks:
            h = block(h) * keep
            states.append(h)
        return states


def parse_k_values(text: Any) -> tuple[int, ...]:
    try:
        ks = tuple(int(k) for k in str(text).replace(" ", "").split(",") if k)
    except ValueError:
        ks = ()
    if not ks or any(k < 2 for k in ks):
        raise ConfigError(f"method {NAME}: option k_values must be comma-separated cluster counts "
                          f">= 2 like 50,100,200, got {text!r}")
    return ks


def layer_index(choice: Any, count: int) -> int:
    """``middle``, ``last`` or an index (negative from the end) into ``count`` states."""
    text = str(choice).strip()
    if text == "middle":
        return count // 2
    if text == "last":
        return count - 1
    try:
        index = int(text)
    except ValueError:
        index = count
    if not -count <= index < count:
        raise ConfigError(f"method {NAME}: option cluster_layer must be 'middle', 'last' or an "
                          f"index in [{-count}, {count - 1}] ({count} layers to cluster), got "
                          f"{choice!r}")
    return index % count


class GmpTl(nn.Module):
    """Stage 1 multi-task heads, stage 2 centroids, stage 3 frame heads, stage 4 AM-Softmax head."""

    def __init__(self, ctx: BuildContext) -> None:
        super().__init__()
        o = ctx.options
        self.device = torch.device(ctx.device)
        self.seed = int(ctx.seed)
        self.k_values = parse_k_values(o["k_values"])
        self.gender_weight = float(o["gender_weight"])
        self.am_scale, self.am_margin = float(o["am_scale"]), float(o["am_margin"])
        self.cluster_frames, self.kmeans_iters = int(o["cluster_frames"]), int(o["kmeans_iters"])
        if self.cluster_frames < max(self.k_values):
            raise ConfigError(f"method {NAME}: option cluster_frames={self.cluster_frames} is "
                              f"below the largest K ({max(self.k_values)})")
        self.lr, self.upstream_lr = float(o["lr"]), float(o["upstream_lr"])
        self.upstream = finetuned_upstream(ctx)
        self.select: LayerSelect | None = None
        self.encoder: FrameEncoder | None = None
        if self.upstream is not None:
            hidden, n_states = ctx.upstream.hidden_size, ctx.upstream.num_layers
        else:
            hidden, layers = int(o["hidden"]), int(o["encoder_layers"])
            self.select = LayerSelect(ctx.upstream.num_layers, o["layer"], NAME)
            self.encoder = FrameEncoder(ctx.upstream.hidden_size, hidden, layers)
            n_states = 1 + layers
        self.cluster_layer = layer_index(o["cluster_layer"], n_states)
        self.emotion_head = nn.Linear(hidden, ctx.num_classes)
        self.gender_head = nn.Linear(hidden, 2)
        self.frame_heads = nn.ModuleList(nn.Linear(hidden, k) for k in self.k_values)
        self.am_weight = nn.Parameter(torch.randn(ctx.num_classes, hidden) * 0.01)
        for i, k in enumerate(self.k_values):
            self.register_buffer(f"centroids_{i}", torch.zeros(k, hidden))
        self.stage = "multitask"
        # the stage-1 model, frozen once clustered: it gives every frame its pseudo-labels (in a
        # list, so it is neither a submodule nor in the checkpoints and the optimiser)
        self._labeller: list[GmpTl] = []
        self.run_info: dict[str, Any] = {}  # stored in the run record (the k-means fits)

    # ------------------------------------------------------------------------------ forward

    def states(self, batch: Batch) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Every layer the model has, ``(B, T, hidden)`` each, and the valid frame counts."""
        if self.encoder is None:
            hidden, lengths = upstream_hidden(self.upstream, batch)
            return [h.float() for h in hidden], lengths
        assert self.select is not None
        features, lengths = upstream_hidden(None, batch)
        return self.encoder(self.select(features, batch.layers), lengths), lengths

    def centroids(self) -> list[torch.Tensor]:
        return [getattr(self, f"centroids_{i}") for i in range(len(self.k_values))]

    def utterance_scores(self, pooled: torch.Tensor) -> torch.Tensor:
        return losses.cosine_logits(pooled, self.am_weight)

    def loss(self, batch: Batch) -> torch.Tensor:
        states, lengths = self.states(batch)
        top = states[-1]
        if self.stage in ("cluster", "frames"):
            targets = self.pseudo_labels(batch)
            return losses.frame_loss([head(top) for head in self.frame_heads], targets)
        pooled = masked_mean(top, lengths)
        if self.stage == "utterance":
            return losses.am_softmax(self.utterance_scores(pooled), batch.labels, self.am_scale,
                                     self.am_margin)
        if batch.genders is None:
            raise ValueError(f"method {NAME} needs the speakers' genders, the batch has none")
        emotion = nn.functional.cross_entropy(self.emotion_head(pooled), batch.labels)
        gender = nn.functional.cross_entropy(self.gender_head(pooled), batch.genders,
                                             ignore_index=-1)
        return emotion + self.gender_weight * gender

    def predict(self, batch: Batch) -> torch.Tensor:
        """AM-Softmax cosines scaled by s once stage 4 began; the multi-task head before."""
        states, lengths = self.states(batch)
        pooled = masked_mean(states[-1], lengths)
        if self.stage == "utterance":
            return self.am_scale * self.utterance_scores(pooled)
        return self.emotion_head(pooled)

    @property
    def clustered(self) -> bool:
        return bool(self._labeller)

    @torch.no_grad()
    def pseudo_labels(self, batch: Batch) -> list[torch.Tensor]:
        """One ``(B, T)`` target per scale: the nearest centroid of each frame of the frozen
        stage-1 model's ``cluster_layer``; padded frames are ``losses.IGNORE``."""
        if not self._labeller:
            raise ValueError(f"method {NAME}: no pseudo-labels before the cluster stage")
        x, lengths = self._labeller[0].layer_frames(batch)
        valid = valid_mask(lengths, x.shape[1])
        frames = x[valid]
        out = []
        for centroids in self.centroids():
            target = torch.full(valid.shape, losses.IGNORE, dtype=torch.long, device=x.device)
            target[valid] = assign(frames, centroids)[0]
            out.append(target)
        return out

    # ------------------------------------------------------------------------------ stages

    def begin_stage(self, name: str, data: Any) -> None:
        """Called by the training loop before each stage; clustering runs (metered) here."""
        self.stage = name
        if name == "cluster":
            self.cluster(data)
        elif name == "frames" and not self.clustered:
            raise ConfigError(f"method {NAME}: the clustering did not finish within the cluster "
                              "stage's share of max_device_seconds; give the budget more device "
                              "seconds or lower cluster_frames / kmeans_iters")

    @torch.no_grad()
    def layer_frames(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T, hidden)`` states of ``cluster_layer`` and the valid frame counts."""
        states, lengths = self.states(batch.to(self.device))
        x = states[self.cluster_layer].float()
        return x, lengths.to(x.device).clamp(max=x.shape[1])

    @torch.no_grad()
    def sample_frames(self, data: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        """``cluster_frames`` frames of ``cluster_layer`` drawn uniformly, without replacement, from
        every valid frame of every training utterance (one pass over the training set), and what
        the run records of the sample.

        Each frame gets a seeded uniform key and the smallest keys are kept (bottom-k sampling),
        so the sample is uniform over the whole training set while memory stays at about
        ``cluster_frames`` frames plus one batch; every speaker contributes in proportion to
        their frames. With fewer frames than ``cluster_frames`` every frame is used.
        """
        generator = torch.Generator().manual_seed(self.seed)
        keys = torch.empty(0)
        frames: torch.Tensor | None = None
        owner = torch.empty(0, dtype=torch.long)  # index into ``utterances`` of each kept frame
        utterances: list[tuple[str, str]] = []
        seen = 0
        for batch in data.train_batches(epochs=1):
            x, lengths = self.layer_frames(batch)
            valid = valid_mask(lengths, x.shape[1])
            new = x[valid]
            rows = torch.arange(len(utterances), len(utterances) + batch.size)
            utterances += list(zip(batch.keys, batch.speakers, strict=True))
            new_owner = rows[:, None].expand(valid.shape)[valid.cpu()]
            seen += len(new)
            new_keys = torch.rand(len(new), generator=generator)
            keys = torch.cat([keys, new_keys])
            frames = new if frames is None else torch.cat([frames, new])
            owner = torch.cat([owner, new_owner])
            if len(keys) > self.cluster_frames:
                keep = torch.sort(keys, stable=True).indices[: self.cluster_frames]
                keys, owner = keys[keep], owner[keep]
                frames = frames[keep.to(frames.device)]
        if frames is None:
            raise ValueError(f"method {NAME}: the training split gave no frames to cluster")
        kept = {utterances[i] for i in owner.unique().tolist()}
        info = {"layer": self.cluster_layer, "frames": len(frames), "frames_seen": seen,
                "utterances": len(kept), "utterances_seen": len(utterances),
                "speakers": len({spk for _, spk in kept}),
                "speakers_seen": len({spk for _, spk in utterances})}
        return frames, info

    @torch.no_grad()
    def cluster(self, data: Any) -> None:
        """Sample frames of the stage-1 model, run k-means at every scale, freeze a copy of the
        stage-1 model that labels frames from then on.

        The scales' Lloyd iterations run in turn, one each, until every scale has converged (at
        most 0.1 % of its points change cluster), ``kmeans_iters`` is reached, or the stage's
        share of the device seconds is spent: then each scale keeps its last whole iteration,
        and ``run_info["kmeans"]`` says which and why. Frames are labelled when a batch is
        trained on, so the labelling costs the frame stages a forward pass each, not this stage a
        pass over the corpus.
        """
        self.eval()
        pool, info = self.sample_frames(data)
        runs = [Lloyd(pool, k, self.seed * 1009 + i) for i, k in enumerate(self.k_values)]
        stopped = "converged"
        try:
            while not all(r.converged for r in runs):
                if max(r.iterations for r in runs) >= self.kmeans_iters:
                    stopped = "kmeans_iters"
                    break
                for r in runs:
                    if not r.converged:
                        r.step()
        except BudgetExhausted as exc:  # the stage's time is up: keep what is done
            stopped = exc.reason
        for centroids, r in zip(self.centroids(), runs, strict=True):
            centroids.copy_(r.centroids)
        self.run_info["kmeans"] = {**info, "stopped_by": stopped,
                                   "scales": [r.summary() for r in runs]}
        labeller = copy.deepcopy(self).eval().requires_grad_(False)
        self._labeller = [labeller]

    def configure_optimizer(self) -> torch.optim.Optimizer:
        """The pretrained upstream at ``upstream_lr``; every new part at ``lr``."""
        return pretrained_and_new_adamw(self, self.upstream_lr, self.lr)


def build(ctx: BuildContext) -> GmpTl:
    """``MethodSpec.build`` of GMP-TL."""
    return GmpTl(ctx).to(ctx.device)
