"""The data contracts between the referee and its plugins.

Everything here is plain data with lazy loaders, so that listing components never imports torch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Sequence

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch


def lazy(target: str) -> Callable[..., Any]:
    """``"package.module:attr"`` as a callable that imports the module when first called, so a
    spec stays data (``serbench list`` imports no torch). Specs accept such strings for
    ``UpstreamSpec.loader`` and ``MethodSpec.build``."""
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"lazy target {target!r} must read 'package.module:attr'")

    def call(*args: Any, **kwargs: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(module), attr)(*args, **kwargs)

    call.__qualname__ = call.__name__ = target
    return call


def _resolve_lazy(spec: Any, name: str) -> None:
    value = getattr(spec, name)
    if isinstance(value, str):
        object.__setattr__(spec, name, lazy(value))


# --------------------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class Utterance:
    """One labelled utterance of a corpus.

    ``path`` is relative to the corpus root; ``gender`` is ``"female"``, ``"male"`` or ``None``;
    ``duration`` is in seconds (``None`` when unknown until decoded); ``split`` is the partition
    the corpus itself assigns (MSP-Podcast's ``Split_Set``, a manifest's ``fold`` column), which
    protocols built on it read.
    """

    key: str
    path: str
    label: str
    speaker: str
    gender: str | None = None
    session: str | None = None
    text: str | None = None
    duration: float | None = None
    split: str | None = None


@dataclass(frozen=True)
class Fold:
    """One train / dev / test split of a protocol, as lists of utterance keys."""

    name: str
    train: tuple[str, ...]
    dev: tuple[str, ...]
    test: tuple[str, ...]


@dataclass(frozen=True)
class DatasetSpec:
    """A corpus and its protocols.

    ``load_manifest(root, options)`` reads the corpus as published and returns its utterances;
    ``folds(utterances, protocol, options)`` returns the protocol's folds. ``protocols`` maps each
    protocol name to a one-line description; the first one is the default. ``options`` are the
    dataset's options with their defaults (e.g. IEMOCAP's ``improvised``). ``dirnames`` are the
    folder names the corpus usually has, so ``--data-root`` may point at a folder holding it.
    """

    name: str
    labels: tuple[str, ...]
    protocols: Mapping[str, str]
    load_manifest: Callable[[Any, Mapping[str, Any]], list[Utterance]]
    folds: Callable[[Sequence[Utterance], str, Mapping[str, Any]], list[Fold]]
    description: str = ""
    download: Callable[[Any], None] | None = None
    licence: str = ""
    citation: str = ""
    has_text: bool = False
    has_gender: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    dirnames: tuple[str, ...] = ()
    obtain: str = ""  # how to get a licensed corpus, shown when it is missing

    @property
    def default_protocol(self) -> str:
        return next(iter(self.protocols))


# --------------------------------------------------------------------------------------- upstreams


@dataclass(frozen=True)
class UpstreamSpec:
    """An encoder from audio (or text) to a stack of hidden states.

    ``loader(device)`` returns a ``torch.nn.Module``. Audio upstreams: ``forward(waveforms (B, S)
    float32 at sample_rate, lengths (B,) samples) -> (list of L tensors (B, T, D), frame lengths
    (B,))``. Text upstreams (``modality="text"``): ``forward(texts: list[str]) -> (list of L tensors
    (B, T, D), token lengths (B,))``; ``pooling`` says how a sentence embedding is taken.
    ``revision`` is the pinned weights revision (``None`` for weight-free extractors); the loaded
    module may expose a resolved ``revision`` attribute that the run records. A spec registered
    under a prefix (``hf:``) with ``for_name`` builds the spec of any ``hf:<rest>`` name.
    """

    name: str
    loader: Callable[[Any], Any] | str  # or "package.module:attr", imported when called
    modality: Literal["audio", "text"] = "audio"
    sample_rate: int = 16000
    num_layers: int = 1
    hidden_size: int = 0
    frame_rate: float = 0.0  # frames per second; 0 for utterance-level (T = 1) extractors
    revision: str | None = None
    n_parameters: int = 0
    trainable: bool = True
    source: str = ""
    description: str = ""
    pooling: Literal["mean", "first"] = "mean"
    # a factory registered under ``prefix:`` (``hf:``, ``s3prl:``): the spec of ``prefix:<rest>``
    for_name: Callable[[str], UpstreamSpec] | str | None = None

    def __post_init__(self) -> None:
        _resolve_lazy(self, "loader")
        _resolve_lazy(self, "for_name")


# --------------------------------------------------------------------------------------- methods


@dataclass(frozen=True)
class Stage:
    """One stage of a multi-stage recipe and its share of the budget (shares sum to 1)."""

    name: str
    share: float
    description: str = ""


@dataclass(frozen=True)
class MethodSpec:
    """A training recipe.

    ``build(ctx: BuildContext) -> torch.nn.Module`` with ``loss(batch) -> scalar tensor`` and
    ``predict(batch) -> (B, C) scores``. ``requires`` names what the data must have (``text``,
    ``gender``, ``frames``). ``inputs`` says what a frozen upstream feeds the model: ``frames``
    (all layers, all frames) or ``pooled`` (all layers, each mean-pooled over valid frames: exact
    for models that are linear up to their pooling, and much faster). ``finetunes_upstream`` is the
    default; an option named ``finetune_upstream`` in ``defaults`` overrides it per run.
    ``layer_option`` names the option that says which hidden state a frozen-upstream method reads
    (``weighted`` reads every layer, ``last`` the last, an integer that index): the feature cache
    then keeps, and the feed hands over, only that layer (``Batch.layers`` says which). ``None``:
    the method reads every layer.
    ``defaults`` lists every option the method accepts with its default. ``search_space``
    declares what a trial search (``max_trials > 1``) varies, ``tunes`` names those options; each
    run records those it varied under ``tuned``. ``baseline`` declares the options of the
    method's paired baseline (the same method with its addition switched off).
    """

    name: str
    build: Callable[[Any], Any] | str  # or "package.module:attr", imported when called
    description: str = ""
    requires: frozenset[str] = frozenset()
    finetunes_upstream: bool = False
    inputs: Literal["frames", "pooled"] = "frames"
    layer_option: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    search_space: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    stages: tuple[Stage, ...] = (Stage("train", 1.0),)
    # published numbers for this method (serbench.judge.references item mappings, ``upstream`` each)
    references: tuple[Mapping[str, Any], ...] = ()
    # the options of this method's paired baseline (contrastive_reg: {"alpha": 0.0}), which
    # suites plan with ``with_baseline``
    baseline: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        _resolve_lazy(self, "build")

    @property
    def tunes(self) -> tuple[str, ...]:
        """The options a trial search varies: the keys of ``search_space``, sorted."""
        return tuple(sorted(self.search_space))

    def finetunes(self, options: Mapping[str, Any]) -> bool:
        return bool(options.get("finetune_upstream", self.finetunes_upstream))

    def layers_read(self, options: Mapping[str, Any], num_layers: int) -> tuple[int, ...]:
        """The upstream layers a run with these options reads from a frozen upstream.

        Every layer unless ``layer_option`` names one; a value that is no layer reads them all
        here (the method's own check reports it when it builds).
        """
        every = tuple(range(num_layers))
        if self.layer_option is None:
            return every
        text = str(options.get(self.layer_option, self.defaults.get(self.layer_option))).strip()
        if text == "last":
            return (num_layers - 1,)
        try:
            index = int(text)
        except ValueError:
            return every
        return (index % num_layers,) if -num_layers <= index < num_layers else every

    def frames_read(self, options: Mapping[str, Any], num_layers: int
                    ) -> tuple[int, ...] | None:
        """The layers whose frames a run reads from the feature cache: ``()`` for pooled inputs
        or a fine-tuned upstream, None for every layer (however many the model turns out to
        give), else those :meth:`layers_read` names."""
        if self.inputs != "frames" or self.finetunes(options):
            return ()
        read = self.layers_read(options, num_layers)
        return None if len(read) == num_layers else read


# --------------------------------------------------------------------------------------- budgets


@dataclass(frozen=True)
class Budget:
    """The compute one run (one fold, one seed) may spend. The loop stops at the first limit."""

    name: str
    max_steps: int
    batch_seconds: float
    max_device_seconds: float
    max_trials: int = 1
    eval_every: int = 100
    precision: Literal["fp32", "bf16"] = "fp32"
    device: str = "auto"
    # where a run is placed (Ray task resources), not what it may spend: not in the signature
    cpus: int = 1
    memory_gb: float = 0.0  # 0: reserve nothing

    def signature(self, **context: Any) -> str:
        """What makes two budgets comparable: every limit, not the name nor the placement, and
        the ``context`` a run adds (its device type and whether the upstream is frozen: a second
        on a GPU or of a cached forward pass is not a second on a CPU or of a fine-tuned one)."""
        d = asdict(self)
        for key in ("name", "device", "cpus", "memory_gb"):
            d.pop(key)
        d.update(context)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class RunSpec:
    """One cell of a sweep. ``options`` hold only the method options set away from defaults."""

    upstream: str
    method: str
    dataset: str
    protocol: str
    fold: str
    seed: int
    budget: str
    options: Mapping[str, Any] = field(default_factory=dict)
    dataset_options: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["options"] = dict(sorted(self.options.items()))
        d["dataset_options"] = dict(sorted(self.dataset_options.items()))
        return d


@dataclass
class Batch:
    """What the loop hands a method's ``loss`` and ``predict``.

    With a frozen upstream ``features`` holds one tensor per layer, ``(B, T, D)`` (``T = 1`` when
    the method takes ``pooled`` inputs) and ``lengths`` the valid frames. With a fine-tuned upstream
    ``waveforms`` ``(B, S)`` and ``lengths`` in samples are given instead and the model calls the
    upstream itself. ``labels`` index ``BuildContext.labels``; ``genders`` are 0 female, 1 male.
    """

    keys: list[str]
    labels: "torch.Tensor"
    lengths: "torch.Tensor"
    speakers: list[str]
    features: list["torch.Tensor"] | None = None
    waveforms: "torch.Tensor | None" = None
    genders: "torch.Tensor | None" = None
    texts: list[str] | None = None
    audio_seconds: float = 0.0  # real audio in the batch, counted against the budget
    # (B, L, T, D): every layer in one tensor when the feed built them so; ``features`` are then
    # its views (made here when only the stack is given). A layer-weighted sum over it is one
    # batched product, not a stack and a copy.
    stacked: "torch.Tensor | None" = None
    # the upstream layers ``features`` hold, in order, when the feed gave only those a method
    # reads (``MethodSpec.layer_option``); None: every layer
    layers: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.stacked is not None and self.features is None:
            self.features = list(self.stacked.unbind(1))

    @property
    def size(self) -> int:
        return len(self.keys)

    def to(self, device: Any) -> "Batch":
        """The batch on ``device`` (itself when it is there already)."""
        if str(self.labels.device) == str(device):
            return self

        def move(t: Any) -> Any:
            return None if t is None else t.to(device, non_blocking=True)

        return Batch(
            keys=self.keys,
            labels=move(self.labels),
            lengths=move(self.lengths),
            speakers=self.speakers,
            # views of the moved stack when there is one: the layers are moved once
            features=None if self.features is None or self.stacked is not None
            else [move(f) for f in self.features],
            waveforms=move(self.waveforms),
            genders=move(self.genders),
            texts=self.texts,
            audio_seconds=self.audio_seconds,
            stacked=move(self.stacked),
            layers=self.layers,
        )


GENDERS: tuple[str, str] = ("female", "male")


@dataclass
class BuildContext:
    """What a method's ``build`` gets: the task, its options and lazy access to the encoders."""

    labels: tuple[str, ...]
    options: dict[str, Any]
    upstream: UpstreamSpec
    dataset: DatasetSpec
    device: Any
    seed: int
    finetune_upstream: bool
    load_upstream: Callable[[], Any]
    text_encoder: Callable[[str], UpstreamSpec]
    stages: tuple[Stage, ...] = (Stage("train", 1.0),)

    @property
    def num_classes(self) -> int:
        return len(self.labels)


class ConfigError(ValueError):
    """A bad name, option, budget or input: reported as one line, never a traceback."""


def error_line(exc: BaseException) -> str:
    """One line naming what went wrong; unexpected exceptions keep their type name."""
    text = " ".join(str(exc).split())
    if isinstance(exc, (ConfigError, FileNotFoundError, PermissionError)):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text} (run with --debug for the traceback)"
