"""A tutorial serbench plugin: an upstream (``example_mfcc``), a method (``prototype``) and a
dataset (``mini_emodb``).

The module registered under the ``serbench`` entry-point group holds the hook implementations.
It only describes components: torch is imported inside the loader and the build function, so
``serbench list`` stays fast.
"""

from __future__ import annotations

from typing import Any, Callable

from serbench import BuildContext, DatasetSpec, MethodSpec, UpstreamSpec, hookimpl

N_MFCC = 20


def _load_mfcc(device: Any) -> Any:
    from .mfcc import MFCC

    return MFCC(n_mfcc=N_MFCC).to(device).eval()


def _build_prototype(ctx: BuildContext) -> Any:
    from .prototype import PrototypeClassifier

    return PrototypeClassifier(ctx)


@hookimpl
def serbench_register_upstreams(register: Callable[[UpstreamSpec], None]) -> None:
    register(UpstreamSpec(
        name="example_mfcc",
        loader=_load_mfcc,
        sample_rate=16000,
        num_layers=1,
        hidden_size=N_MFCC,
        frame_rate=100.0,
        revision=None,
        trainable=False,
        source="serbench-example-plugin",
        description="20 MFCCs per 10 ms frame (tutorial upstream, no weights)",
    ))


@hookimpl
def serbench_register_methods(register: Callable[[MethodSpec], None]) -> None:
    register(MethodSpec(
        name="prototype",
        build=_build_prototype,
        description="cosine similarity to one learnable prototype per class (tutorial method)",
        inputs="pooled",  # linear up to the pooling: the harness may feed pooled features
        defaults={"lr": 0.01, "temperature": 10.0, "normalize": "none"},
    ))


@hookimpl
def serbench_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    from . import mini_emodb  # csv and pathlib only: cheap enough for `serbench list`

    register(DatasetSpec(
        name="mini_emodb",
        labels=mini_emodb.LABELS,
        protocols={"loso": "leave one speaker out; dev is the next speaker"},
        load_manifest=mini_emodb.load_manifest,
        folds=mini_emodb.folds,
        description="32 EmoDB files, 4 speakers x 4 emotions (tutorial dataset)",
        licence="CC0-1.0 (EmoDB)",
        citation="Burkhardt et al., A database of German emotional speech, Interspeech 2005",
        has_gender=True,
        dirnames=("emodb",),
        obtain="serbench data download emodb --data-root DIR",
    ))
