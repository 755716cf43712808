"""serbench first-party plugin ``baselines``: the ``linear`` and ``mlp`` probes, ``logreg`` and
``finetune``.

Registration only describes: the models (and torch) are imported inside the build functions, so
``serbench list`` stays fast.
"""

from __future__ import annotations

from typing import Any, Callable

from serbench import MethodSpec, hookimpl

PROBE_DEFAULTS: dict[str, Any] = {
    # SUPERB's emotion probe uses Adam at 1e-4 for 30k steps; under the 1,000-step probe budget
    # that under-trains, so the default is 1e-3 (set lr=1e-4 for SUPERB's value).
    "lr": 1e-3,
    "layer": "weighted",  # weighted (SUPERB) | last | <index>
    "hidden": 256,
    # none | global | speaker, applied by the harness to the features. global: the training
    # set's statistics (eGeMAPS sits at chance without them); SUPERB used none
    "normalize": "global",
}


LOGREG_DEFAULTS: dict[str, Any] = {
    "layer": "last",  # last | <index>: one hidden state (a learnt weighting is not convex)
    "c_values": "0.001,0.01,0.1,1,10",  # inverse L2 strengths tried, picked by dev UAR
    "tol": 1e-6,  # a fit is done when its largest gradient entry is at most this
    "max_iter": 500,  # L-BFGS iterations (loop steps) per C at most
    "normalize": "global",  # none | global | speaker: applied by the harness to the features
}


def method_specs() -> list[MethodSpec]:
    return [
        MethodSpec(
            name="linear",
            build="serbench_baselines.probes:build_linear",
            description="SUPERB probe: weighted layer sum, Linear(D,256), mean pool, Linear(256,C)",
            inputs="pooled",
            layer_option="layer",
            defaults=dict(PROBE_DEFAULTS),
            search_space={"lr": (1e-4, 3e-4, 1e-3, 3e-3)},
        ),
        MethodSpec(
            name="mlp",
            build="serbench_baselines.probes:build_mlp",
            description="EmoBox probe: weighted layer sum, Linear(D,256)+ReLU per frame, mean "
                        "pool, Linear(256,C)",
            inputs="frames",
            layer_option="layer",
            defaults=dict(PROBE_DEFAULTS),
            search_space={"lr": (1e-4, 3e-4, 1e-3, 3e-3)},
        ),
        MethodSpec(
            name="finetune",
            build="serbench_baselines.finetune:build_finetune",
            description="the upstream fine-tuned under a mean-pooled linear head",
            finetunes_upstream=True,
            layer_option="layer",
            defaults={
                "lr": 1e-3,  # the new head
                "upstream_lr": 2e-5,  # the pretrained upstream
                "layer": "last",  # last | weighted | <index>
            },
            search_space={"upstream_lr": (1e-5, 2e-5, 5e-5)},
        ),
        MethodSpec(
            name="logreg",
            build="serbench_baselines.logreg:build_logreg",
            description="L2 multinomial logistic regression on one pooled layer, solved by "
                        "full-batch L-BFGS, C picked on dev (scikit-learn's objective)",
            inputs="pooled",
            layer_option="layer",
            defaults=dict(LOGREG_DEFAULTS),
        ),
    ]


@hookimpl
def serbench_register_methods(register: Callable[[MethodSpec], None]) -> None:
    for spec in method_specs():
        register(spec)
