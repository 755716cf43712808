"""Conformance checks for upstream plugins, and tiny random models to test loaders with.

``check_upstream(spec)`` loads an upstream and checks it against its spec the way the harness will
use it: layer count and shapes, finite values, frame lengths that match the declared frame rate, a
padded batch that gives each utterance's own result on its valid frames, and determinism. It needs
no pytest, so plugin authors can call it from any test runner, and ``serbench validate upstream``
prints it. ``tiny_transformers_model`` writes a randomly initialised tiny Hugging Face model folder
so that tests exercise the real ``hf:<dir>`` loading path without downloading weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serbench.specs import ConfigError, UpstreamSpec

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

AUDIO_SECONDS = (1.25, 0.8, 0.45)
TEXTS = (
    "I can't believe you did that again, this is so annoying!",
    "Hello.",
    "We finally won the match and everybody was cheering.",
)
# frames may start late or stop early by up to a 100 ms analysis window, plus one for rounding
FRAME_SLACK_SECONDS = 0.1
BATCH_TOLERANCE = 1e-4  # relative to the largest magnitude of the utterance's own result


@dataclass(frozen=True)
class Check:
    """One conformance check: what was checked, whether it held, and the numbers behind it."""

    name: str
    ok: bool
    detail: str


def sample_audio(sample_rate: int, seconds: tuple[float, ...] = AUDIO_SECONDS
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """A zero-padded batch of voiced-like audio (gliding harmonics plus a little noise)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([round(s * sample_rate) for s in seconds])
    batch = torch.zeros(len(seconds), int(lengths.max()))
    for i, n in enumerate(lengths.tolist()):
        t = torch.arange(n, dtype=torch.float64) / sample_rate
        f0 = 120.0 + 60.0 * i + 40.0 * t / max(t[-1].item(), 1e-9)
        phase = 2 * math.pi * torch.cumsum(f0, 0) / sample_rate
        voiced = sum(torch.sin(k * phase) / k for k in range(1, 6))
        envelope = 0.5 - 0.5 * torch.cos(2 * math.pi * t * 3)
        noise = 0.01 * torch.randn(n, generator=gen, dtype=torch.float64)
        batch[i, :n] = (0.3 * envelope * voiced + noise).float()
    return batch, lengths


def _describe(exc: Exception) -> str:
    """A broken contract or a user error speaks for itself; anything else keeps its type."""
    return str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"


def _run(module: Any, spec: UpstreamSpec, inputs: Any) -> tuple[list[torch.Tensor], torch.Tensor]:
    import torch

    from serbench.contracts import upstream_output

    with torch.inference_mode():
        if spec.modality == "text":
            layers, lengths = upstream_output(spec.name, module(list(inputs)))
        else:
            waves, lengths = inputs
            layers, lengths = upstream_output(spec.name, module(waves, lengths))
    return [t.detach().float().cpu() for t in layers], lengths.detach().cpu()


def _item(spec: UpstreamSpec, inputs: Any, i: int, device: Any) -> Any:
    if spec.modality == "text":
        return [inputs[i]]
    waves, lengths = inputs
    n = int(lengths[i])
    return waves[i : i + 1, :n].to(device), lengths[i : i + 1].to(device)


def _max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference relative to ``b``'s magnitude; NaN where both are NaN counts as equal."""
    if not a.numel():
        return 0.0
    both_nan = a.isnan() & b.isnan()
    diff = (a.masked_fill(both_nan, 0) - b.masked_fill(both_nan, 0)).abs()
    if bool(diff.isnan().any()):
        return math.inf
    scale = max(1.0, float(b.masked_fill(both_nan, 0).abs().max()))
    return float(diff.max()) / scale


def check_upstream(spec: UpstreamSpec, device: Any = "cpu") -> list[Check]:
    """Load ``spec`` on ``device`` and check it against its own declaration.

    A ``ConfigError`` from the loader (say, weights not available offline) propagates: it is the
    user's to fix, not a defect of the plugin. Any other failure to load is a failed check.
    """
    import torch

    checks: list[Check] = []
    try:
        module = spec.loader(device)
    except ConfigError:
        raise
    except Exception as exc:  # a broken loader is what this check exists to report
        return [Check("loads", False, f"loader({device!r}) raised {type(exc).__name__}: {exc}")]
    is_module = isinstance(module, torch.nn.Module)
    kind = type(module).__name__
    checks.append(Check("loads", is_module, kind if is_module else f"{kind} is no torch.nn.Module"))
    if not is_module:
        return checks
    checks.append(Check("eval mode", not module.training,
                        "frozen use must not drop layers or apply dropout"
                        if module.training else "module.training is False"))
    checks.append(_revision(spec, module))

    if spec.modality == "text":
        inputs: Any = TEXTS
    else:
        waves, lengths = sample_audio(spec.sample_rate)
        inputs = (waves.to(device), lengths.to(device))
    try:
        layers, frames = _run(module, spec, inputs)
    except Exception as exc:
        checks.append(Check("forward", False, _describe(exc)))
        return checks
    shape_checks = _shape_checks(spec, layers, frames)
    checks.extend(shape_checks)
    if not all(c.ok for c in shape_checks):
        return checks
    checks.append(_finite(layers, frames))
    if spec.modality == "audio":
        checks.append(_frame_lengths(spec, frames, inputs[1].cpu()))
    checks.append(_batch_vs_items(spec, module, inputs, layers, frames, device))
    again, frames_again = _run(module, spec, inputs)
    worst = max(_max_rel_diff(a, b) for a, b in zip(again, layers, strict=True))
    same = torch.equal(frames_again, frames) and worst <= 1e-6
    checks.append(Check("deterministic", same, f"second run differs by {worst:.2e} (relative)"))
    return checks


def _revision(spec: UpstreamSpec, module: Any) -> Check:
    """The loaded module's ``revision`` is optional: without one, runs record the spec's."""
    if not hasattr(module, "revision"):
        return Check("revision", True, f"no module.revision: runs record the spec's revision "
                                       f"{spec.revision or 'none'!r}")
    revision = module.revision
    return Check("revision", isinstance(revision, str) and bool(revision),
                 f"module.revision = {revision!r} (a non-empty string, or leave it out)")


def _shape_checks(spec: UpstreamSpec, layers: list[torch.Tensor], frames: torch.Tensor
                  ) -> list[Check]:
    n = len(TEXTS) if spec.modality == "text" else len(AUDIO_SECONDS)
    out = [Check("layer count", len(layers) == spec.num_layers,
                 f"{len(layers)} layers returned, spec declares {spec.num_layers}")]
    shapes = sorted({tuple(t.shape) for t in layers})
    ok = (len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][0] == n
          and shapes[0][2] == spec.hidden_size)
    out.append(Check("shapes", ok, f"layer shapes {shapes}, expected ({n}, T, {spec.hidden_size})"))
    ok_frames = (tuple(frames.shape) == (n,) and not frames.is_floating_point() and ok
                 and int(frames.min()) >= 1 and int(frames.max()) == shapes[0][1])
    out.append(Check("frame lengths shape", ok_frames,
                     f"lengths {frames.tolist()} ({frames.dtype}); padded T = "
                     f"{shapes[0][1] if shapes and len(shapes[0]) == 3 else '?'}"))
    return out


def _finite(layers: list[torch.Tensor], frames: torch.Tensor) -> Check:
    bad = []
    for k, t in enumerate(layers):
        for i, n in enumerate(frames.tolist()):
            if not bool(t[i, :n].isfinite().all()):
                bad.append(f"layer {k} item {i}")
    return Check("finite", not bad, "all valid frames finite" if not bad
                 else "non-finite values in " + ", ".join(bad[:5]))


def _frame_lengths(spec: UpstreamSpec, frames: torch.Tensor, samples: torch.Tensor) -> Check:
    got = frames.tolist()
    if spec.frame_rate == 0:
        return Check("frame rate", got == [1] * len(got),
                     f"utterance-level extractor: frame lengths {got}, expected all 1")
    seconds = [s / spec.sample_rate for s in samples.tolist()]
    expected = [s * spec.frame_rate for s in seconds]
    slack = FRAME_SLACK_SECONDS * spec.frame_rate + 1
    ok = all(abs(g - e) <= slack for g, e in zip(got, expected, strict=True))
    shown = ", ".join(f"{g} for {s:.2f} s (~{e:.1f})"
                      for g, s, e in zip(got, seconds, expected, strict=True))
    return Check("frame rate", ok, f"{spec.frame_rate:g} frames/s: {shown}; slack {slack:.0f}")


def _batch_vs_items(spec: UpstreamSpec, module: Any, inputs: Any, layers: list[torch.Tensor],
                    frames: torch.Tensor, device: Any) -> Check:
    worst, problems = 0.0, []
    for i in range(len(frames)):
        alone, n_alone = _run(module, spec, _item(spec, inputs, i, device))
        n = int(frames[i])
        if int(n_alone[0]) != n:
            problems.append(f"item {i}: {int(n_alone[0])} frames alone, {n} in the batch")
            continue
        for a, b in zip(layers, alone, strict=True):
            worst = max(worst, _max_rel_diff(a[i, :n], b[0, :n]))
    ok = not problems and worst <= BATCH_TOLERANCE
    detail = "; ".join(problems) or (f"largest difference on valid frames {worst:.2e} (relative, "
                                     f"tolerance {BATCH_TOLERANCE:.0e})")
    return Check("batch equals per-item", ok, detail)


# ------------------------------------------------------------------------------ tiny models

FAMILIES = ("wavlm", "hubert", "wav2vec2", "data2vec-audio", "whisper")


def tiny_transformers_model(family: str, folder: str | Path, norm: str = "group",
                            seed: int = 0) -> Path:
    """Save a randomly initialised tiny ``family`` model with its feature extractor to ``folder``.

    The convolution strides are the real ones (320 samples per frame), everything else is small.
    ``norm`` is the feature encoder's normalisation (``group`` like the base checkpoints, or
    ``layer`` like the large ones); data2vec-audio has layer norm only, Whisper neither.
    """
    import torch
    import transformers as tf

    folder = Path(folder)
    family = "data2vec-audio" if family == "data2vec" else family
    if family not in FAMILIES:
        raise ConfigError(f"unknown tiny model family {family!r}; choose one of {FAMILIES}")
    torch.manual_seed(seed)
    if family == "whisper":
        config = tf.WhisperConfig(
            vocab_size=64, d_model=32, encoder_layers=2, decoder_layers=1,
            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
            decoder_ffn_dim=64, num_mel_bins=80, max_source_positions=1500,
            max_target_positions=32, pad_token_id=0, bos_token_id=1, eos_token_id=2,
            decoder_start_token_id=3, suppress_tokens=None, begin_suppress_tokens=None,
        )
        tf.WhisperModel(config).save_pretrained(folder)
        tf.WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
        return folder
    common: dict[str, Any] = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, layerdrop=0.1,
        vocab_size=32,
    )
    if family == "data2vec-audio":
        norm = "layer"  # its positional embedding is a stack of small convolutions
        common.update(num_conv_pos_embeddings=2, conv_pos_kernel_size=5)
        config = tf.Data2VecAudioConfig(**common)
        model: Any = tf.Data2VecAudioModel(config)
    else:
        cls = {"wavlm": (tf.WavLMConfig, tf.WavLMModel),
               "hubert": (tf.HubertConfig, tf.HubertModel),
               "wav2vec2": (tf.Wav2Vec2Config, tf.Wav2Vec2Model)}[family]
        extra = {"num_buckets": 32, "max_bucket_distance": 64} if family == "wavlm" else {}
        config = cls[0](feat_extract_norm=norm, do_stable_layer_norm=norm == "layer", **common,
                        **extra)
        model = cls[1](config)
    model.save_pretrained(folder)
    tf.Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
        return_attention_mask=norm == "layer",
    ).save_pretrained(folder)
    return folder


# ------------------------------------------------------------------------------------ methods


def _synthetic_batch(spec: Any, layers: int, dim: int, n_classes: int, seed: int = 0,
                     garbage: float = 0.0) -> Any:
    """Eight utterances whose class shows in every layer; padding filled with ``garbage``."""
    import torch

    from serbench.specs import Batch

    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(8) % n_classes
    pooled = spec.inputs == "pooled"
    lengths = torch.ones(8, dtype=torch.long) if pooled else torch.tensor(
        [5, 9, 12, 7, 15, 6, 11, 8])
    t_max = int(lengths.max())
    centres = torch.randn(n_classes, dim, generator=gen)
    feats = []
    for _ in range(layers):
        x = centres[labels][:, None, :] + 0.3 * torch.randn(8, t_max, dim, generator=gen)
        pad = torch.arange(t_max)[None, :] >= lengths[:, None]
        feats.append(x.masked_fill(pad[..., None], garbage))
    return Batch(
        keys=[f"u{i}" for i in range(8)], labels=labels, lengths=lengths,
        speakers=[f"s{i % 2}" for i in range(8)], features=feats,
        genders=torch.arange(8) % 2, texts=[f"sentence number {i % 3}" for i in range(8)],
        audio_seconds=8.0,
    )


def check_method(spec: Any, options: dict[str, Any] | None = None, device: Any = "cpu",
                 layers: int = 3, dim: int = 16) -> list[Check]:
    """Build a method on synthetic frozen features and check what the loop relies on.

    The model must give a finite scalar loss whose gradients reach trainable parameters,
    ``(B, C)`` finite scores, predictions that padding cannot change, and a loss that falls
    when trained on a separable batch. Text encoders come from the installed plugins.
    """
    import torch

    from serbench.contracts import method_model
    from serbench.registry import collect
    from serbench.specs import BuildContext, DatasetSpec, UpstreamSpec

    labels = ("angry", "happy", "neutral", "sad")
    opts = {**spec.defaults, **(options or {})}
    if "finetune_upstream" in opts:
        opts["finetune_upstream"] = False
    upstream = UpstreamSpec(name="synthetic", loader=lambda device: None, num_layers=layers,
                            hidden_size=dim, frame_rate=50.0, trainable=False)
    dataset = DatasetSpec(name="synthetic", labels=labels, protocols={"none": ""},
                          load_manifest=lambda root, o: [], folds=lambda u, p, o: [],
                          has_text=True, has_gender=True)
    registry = collect().upstreams
    ctx = BuildContext(labels=labels, options=opts, upstream=upstream, dataset=dataset,
                       device=torch.device(device), seed=0, finetune_upstream=False,
                       load_upstream=lambda: None, text_encoder=registry.get, stages=spec.stages)
    checks: list[Check] = []
    torch.manual_seed(0)
    try:
        model = method_model(spec.name, spec.build(ctx)).to(device)
    except Exception as exc:  # the report says what failed instead of stopping
        return [Check("build", False, _describe(exc))]
    checks.append(Check("build", True, type(model).__name__))
    batch = _synthetic_batch(spec, layers, dim, len(labels)).to(device)
    model.train()
    loss = model.loss(batch)
    scalar = loss.dim() == 0 and bool(torch.isfinite(loss))
    checks.append(Check("loss is a finite scalar", scalar, f"{loss.detach().tolist()}"))
    if not scalar:
        return checks
    loss.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    reached = sum(1 for p in trainable if p.grad is not None and bool(p.grad.abs().sum() > 0))
    checks.append(Check("gradients reach trainable parameters", reached > 0,
                        f"{reached} of {len(trainable)} parameter tensors"))
    model.eval()
    with torch.no_grad():
        scores = model.predict(batch)
        shape_ok = tuple(scores.shape) == (batch.size, len(labels))
        checks.append(Check("predict gives (B, C) finite scores",
                            shape_ok and bool(torch.isfinite(scores).all()),
                            f"shape {tuple(scores.shape)}"))
        other = _synthetic_batch(spec, layers, dim, len(labels), garbage=1e3).to(device)
        diff = float((model.predict(other) - scores).abs().max()) if shape_ok else float("inf")
        checks.append(Check("padding does not change predictions", diff < 1e-4,
                            f"max difference {diff:.2e} with padding set to 1e3"))
    model.train()
    optimiser = (model.configure_optimizer() if hasattr(model, "configure_optimizer")
                 else torch.optim.AdamW(trainable, lr=float(opts.get("lr", 1e-3)),
                                        weight_decay=0.0))  # the harness's default
    first = float(model.loss(batch).detach())
    for _ in range(30):
        optimiser.zero_grad()
        model.loss(batch).backward()
        optimiser.step()
    last = float(model.loss(batch).detach())
    checks.append(Check("loss falls on a separable batch", last < first,
                        f"{first:.4f} -> {last:.4f} after 30 steps"))
    return checks


# ------------------------------------------------------------------------------------ datasets


def check_dataset(spec: Any, root: str | Path, options: dict[str, Any] | None = None,
                  sample_rate: int = 16000) -> tuple[list[Check], dict[str, Any]]:
    """Read a dataset the way a run will and check it: the manifest loads, keys are unique,
    labels are in ``spec.labels``, every file exists and decodes, genders are valid (and present
    when ``has_gender``), transcripts present when ``has_text``, and every protocol's folds pass
    serbench's fold checks. Returns the checks and the counts ``serbench data stats`` shows.
    """
    from collections import Counter

    from serbench.data.audio import AudioError, load_audio
    from serbench.data.folds import check_folds
    from serbench.data.manifests import audio_path
    from serbench.specs import GENDERS

    root = Path(root)
    opts = {**spec.options, **(options or {})}
    try:
        utts = list(spec.load_manifest(root, opts))
    except Exception as exc:  # what this check exists to report
        return [Check("manifest loads", False, _describe(exc))], {}
    checks = [Check("manifest loads", bool(utts), f"{len(utts)} utterances")]
    counts = {"utterances": len(utts), "speakers": len({u.speaker for u in utts}),
              "labels": dict(sorted(Counter(u.label for u in utts).items())),
              "genders": dict(sorted(Counter(u.gender or "unknown" for u in utts).items())),
              "folds": {}}
    twice = sorted(k for k, n in Counter(u.key for u in utts).items() if n > 1)
    checks.append(Check("keys unique", not twice, f"repeated: {', '.join(twice[:5])}" if twice
                        else f"{len(utts)} distinct keys"))
    stray = sorted({u.label for u in utts} - set(spec.labels))
    checks.append(Check("labels in the declared set", not stray,
                        f"not in {', '.join(spec.labels)}: {', '.join(stray)}" if stray
                        else ", ".join(f"{k} {v}" for k, v in counts["labels"].items())))
    bad: list[str] = []
    for u in utts:
        try:
            load_audio(audio_path(root, u), sample_rate)
        except AudioError as exc:
            bad.append(str(exc))
    checks.append(Check("files exist and decode", not bad,
                        f"{len(bad)} bad, first: {bad[0]}" if bad else f"{len(utts)} files"))
    wrong = sorted({str(u.gender) for u in utts if u.gender is not None
                    and u.gender not in GENDERS})
    missing = sum(u.gender not in GENDERS for u in utts) if spec.has_gender else 0
    checks.append(Check("genders valid", not wrong and not missing,
                        f"values {', '.join(wrong)} (allowed: {', '.join(GENDERS)})" if wrong
                        else f"{missing} utterances lack one, but has_gender=True" if missing
                        else ", ".join(f"{k} {v}" for k, v in counts["genders"].items())))
    if spec.has_text:
        lacking = sum(not u.text for u in utts)
        checks.append(Check("transcripts present", not lacking,
                            f"{lacking} utterances without text, but has_text=True"))
    for protocol in spec.protocols:
        try:
            folds = spec.folds(utts, protocol, opts)
            check_folds(spec.name, utts, folds, spec.labels)
        except Exception as exc:
            checks.append(Check(f"protocol {protocol}", False, _describe(exc)))
            continue
        counts["folds"][protocol] = [{"fold": f.name, "train": len(f.train), "dev": len(f.dev),
                                      "test": len(f.test)} for f in folds]
        checks.append(Check(f"protocol {protocol}", True, f"{len(folds)} folds pass the fold "
                            "checks (disjoint, speaker-independent, known labels)"))
    return checks, counts
