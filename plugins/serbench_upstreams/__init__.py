"""serbench first-party plugin ``upstreams``: filterbanks, openSMILE, transformers, s3prl, text.

Registration only describes: every loader imports torch, transformers or opensmile lazily, so
``serbench list`` stays fast and weight-free.
"""

from __future__ import annotations

from typing import Any, Callable

from serbench import UpstreamSpec, hookimpl


def _lazy(module: str, attr: str = "load") -> Callable[[Any], Any]:
    """A loader that imports ``serbench_upstreams.<module>`` only when called."""

    def loader(device: Any = None) -> Any:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)(device)

    loader.__qualname__ = f"{module}.{attr}"
    return loader


def audio_specs() -> list[UpstreamSpec]:
    """The built-in audio upstreams."""
    return [
        UpstreamSpec(
            name="fbank",
            loader=_lazy("fbank"),
            num_layers=1,
            hidden_size=80,
            frame_rate=100.0,
            trainable=False,
            source="serbench (Kaldi-style log-mel)",
            description="80-bin log-mel filterbank, 25 ms window, 10 ms hop, no weights",
        ),
    ]


@hookimpl
def serbench_register_upstreams(register: Callable[[UpstreamSpec], None]) -> None:
    for spec in audio_specs():
        register(spec)
