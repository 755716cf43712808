"""Conformance checks for upstream plugins.

``check_upstream(spec)`` loads an upstream and checks it against its spec the way the harness will
use it: layer count and shapes, finite values, frame lengths that match the declared frame rate, a
padded batch that gives each utterance's own result on its valid frames, and determinism. It needs
no pytest, so plugin authors can call it from any test runner, and ``serbench validate upstream``
prints it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from serbench.specs import ConfigError, UpstreamSpec
from serbench.testing.checks import AUDIO_SECONDS, TEXTS, Check, _describe, sample_audio

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

# frames may start late or stop early by up to a 100 ms analysis window, plus one for rounding
FRAME_SLACK_SECONDS = 0.1
BATCH_TOLERANCE = 1e-4  # relative to the largest magnitude of the utterance's own result


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
