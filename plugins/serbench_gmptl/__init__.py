"""serbench first-party plugin ``gmptl``: GMP-TL (gender-augmented multi-scale pseudo-labels).

Registration only describes: the model (and torch) is imported inside the build function.
The four stages, each metered against its share of one budget (``METHODS.md``):

1. ``multitask``: ``CE(emotion) + gender_weight · CE(gender)`` on the mean-pooled top layer.
2. ``cluster``: before its steps, k-means (k-means++ init, seeded, in torch) at every K of
   ``k_values`` on ``cluster_frames`` (50,000) frames of layer ``cluster_layer`` of the stage-1
   model, drawn uniformly from every frame of every training utterance in one pass over the
   training set (all of them when there are fewer: the 428 training files of an EmoDB LOSO
   fold hold 117,113 fbank frames at 100 Hz, about half as many at an SSL model's 50 Hz; every
   one of them and all 8 training speakers are in the 50,000). Lloyd iterations run until at
   most 0.1 % of the points change cluster, at most ``kmeans_iters``, or until the stage's
   share of the device seconds is spent; the run
   records per K the inertia, iterations and whether it converged (``method_info.kmeans``), and
   how many frames, utterances and speakers the sample holds. A frozen copy of the stage-1 model
   then gives each frame its pseudo-label per scale (its nearest centroid) whenever a batch is
   trained on; the stage's few steps already train stage 3's loss.
3. ``frames``: one linear frame classifier per scale on the top layer, cross-entropy against the
   pseudo-labels, padded frames ignored.
4. ``utterance``: AM-Softmax (``am_scale`` s, ``am_margin`` m) on the emotion labels; its cosine
   scores are the predictions.

Defaults and where they come from: ``finetune_upstream`` true [paper: HuBERT fine-tuned]; with
``finetune_upstream=false`` the model trains on cached frames through a small frame encoder
[choice]: the ``layer`` hidden state → ``Linear(D, hidden)`` → ``encoder_layers`` residual blocks
(LayerNorm → depthwise Conv1d(kernel 5) → Linear → GELU), padded frames zeroed after every block
so each utterance's outputs do not depend on its batch. The "layers" the clustering can pick are
then that encoder's outputs (0 = the projection); fine-tuned, the upstream's hidden states.
``cluster_layer`` ``middle`` [paper: an intermediate layer], ``k_values`` 50,100,200 [choice],
``gender_weight`` λ 0.5 [choice], ``am_scale`` 30 and ``am_margin`` 0.2 [choice].

Stage shares: the loop allocates a budget from ``MethodSpec.stages``, which is static, so the
shares are fixed per registered method (30 / 5 / 30 / 35 %) and read from ``serbench list methods
--json``; every run records each stage's allocated and used steps and seconds under
``usage.stages``. Other shares are another method: ``method_spec("gmp_tl_even", (0.25, 0.1,
0.3, 0.35))`` returns a spec a plugin can register, and its name keeps the variants apart on the
leaderboard.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from serbench import MethodSpec, Stage, hookimpl

STAGE_NAMES = ("multitask", "cluster", "frames", "utterance")
DEFAULT_SHARES = (0.30, 0.05, 0.30, 0.35)
DESCRIPTIONS = (
    "emotion + gender_weight x gender cross-entropy on pooled frames",
    "multi-scale k-means pseudo-labels on frames of cluster_layer (metered)",
    "frame-level cross-entropy against every scale's pseudo-labels",
    "utterance-level AM-Softmax on the emotion labels",
)

DEFAULTS: dict[str, Any] = {
    "finetune_upstream": True,
    "k_values": "50,100,200",
    "cluster_layer": "middle",  # middle | last | <index>
    "cluster_frames": 50000,  # frames sampled uniformly (seeded) from all training frames
    "kmeans_iters": 300,  # at most; Lloyd stops earlier once <= 0.1 % of the points move
    "gender_weight": 0.5,
    "am_scale": 30.0,
    "am_margin": 0.2,
    "layer": "weighted",  # frozen upstream: which hidden state feeds the frame encoder
    "hidden": 128,  # frozen upstream: frame encoder width
    "encoder_layers": 2,  # frozen upstream: residual conv blocks
    "lr": 1e-3,
    "upstream_lr": 2e-5,
    "normalize": "global",  # none | global | speaker (frozen features only; else none)
}


def method_spec(name: str = "gmp_tl", shares: Sequence[float] = DEFAULT_SHARES) -> MethodSpec:
    """The GMP-TL method under ``name`` with the four stages' budget ``shares``."""
    if len(shares) != len(STAGE_NAMES):
        raise ValueError(f"GMP-TL has {len(STAGE_NAMES)} stages, got {len(shares)} shares")
    return MethodSpec(
        name=name,
        build="serbench_gmptl.model:build",
        description="GMP-TL: emotion+gender multi-task, multi-scale k-means frame pseudo-labels, "
                    "frame-level then AM-Softmax utterance-level fine-tuning",
        requires=frozenset({"frames", "gender"}),
        finetunes_upstream=True,
        inputs="frames",
        layer_option="layer",
        defaults=dict(DEFAULTS),
        stages=tuple(Stage(n, float(s), d)
                     for n, s, d in zip(STAGE_NAMES, shares, DESCRIPTIONS, strict=True)),
    )


@hookimpl
def serbench_register_methods(register: Callable[[MethodSpec], None]) -> None:
    register(method_spec())
