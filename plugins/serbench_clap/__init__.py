"""serbench first-party plugin ``clap``: Emo-CLAP and the gender-aware GEmo-CLAPs.

Registration only describes: the model (and torch) is imported inside the build functions.
Defaults, and where they come from (see ``METHODS.md``):

- ``text_encoder`` ``roberta_base`` [paper]; ``minilm`` works offline.
- ``finetune_upstream`` true [paper: the audio encoder is fine-tuned]; false trains the
  projections on cached features (``inputs="pooled"`` is exact: the tower pools before its first
  nonlinearity).
- ``finetune_text`` false [choice]: the class prompts are the only texts, so a fine-tuned text
  encoder can only move C sentence embeddings, which the trainable text projection already does.
- ``layer`` ``last`` [reimpl: mean of the last hidden state]; ``weighted`` is SUPERB's sum.
- ``lr`` 1e-3 for the new parts (projections, temperatures, layer weights), ``upstream_lr``
  2e-5 for the pretrained encoders [reimpl: Adam 2e-5 for the fine-tuned encoder].
- ``target_norm`` ``rowsum`` [choice]; ``alpha_e`` 0.9 (ML) and 0.8 (SL) [paper, reimpl].
- Gender loss on the same logits as the emotion loss (utterance-to-emotion-prompt): ML adds a
  gender target to them, SL mixes the targets; no gender prompt is needed [reimpl].
"""

from __future__ import annotations

from typing import Any, Callable

from serbench import MethodSpec, hookimpl

DEFAULTS: dict[str, Any] = {
    "text_encoder": "roberta_base",
    "finetune_upstream": True,
    "finetune_text": False,
    "layer": "last",  # last | weighted | <index>
    "proj_dim": 512,
    "prompt": "The speaker feels {adjective}.",  # fields: {label}, {adjective}
    "target_norm": "rowsum",  # rowsum | softmax
    "lr": 1e-3,
    "upstream_lr": 2e-5,
    "normalize": "global",  # none | global | speaker (frozen features only; else none)
}


def method_specs() -> list[MethodSpec]:
    # every CLAP-family method tunes the same thing (lr), so that under max_trials > 1
    # Emo-CLAP and the GEmo-CLAPs stay comparable; alpha_e stays at its paper value
    common: dict[str, Any] = dict(finetunes_upstream=True, inputs="pooled", layer_option="layer",
                                  search_space={"lr": (3e-4, 1e-3, 3e-3)})
    return [
        MethodSpec(
            name="emo_clap",
            build="serbench_clap.model:build_emo_clap",
            description="Emo-CLAP: audio and text towers, label-based KL contrastive loss",
            defaults=dict(DEFAULTS),
            **common,
        ),
        MethodSpec(
            name="ml_gemo",
            build="serbench_clap.model:build_ml_gemo",
            description="ML-GEmo-CLAP: Emo-CLAP plus a gender contrastive loss, "
                        "alpha_e L_e + (1 - alpha_e) L_g",
            requires=frozenset({"gender"}),
            defaults={**DEFAULTS, "alpha_e": 0.9},
            **common,
        ),
        MethodSpec(
            name="sl_gemo",
            build="serbench_clap.model:build_sl_gemo",
            description="SL-GEmo-CLAP: Emo-CLAP with the soft target alpha_e M_e + "
                        "(1 - alpha_e) M_g",
            requires=frozenset({"gender"}),
            defaults={**DEFAULTS, "alpha_e": 0.8},
            **common,
        ),
    ]


@hookimpl
def serbench_register_methods(register: Callable[[MethodSpec], None]) -> None:
    for spec in method_specs():
        register(spec)
