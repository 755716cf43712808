"""``check_method(spec)``: build a method on synthetic batches and check the model contract the
training loop relies on (loss, predict, shapes, a step that learns)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from serbench.specs import UpstreamSpec
from serbench.testing.checks import Check, _describe

if TYPE_CHECKING:  # pragma: no cover - typing only
    pass

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
    from serbench.specs import BuildContext, DatasetSpec

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
    if spec.layer_option:
        checks.append(_reads_its_layer(spec, ctx, layers, dim, len(labels)))
    return checks


def _reads_its_layer(spec: Any, ctx: Any, layers: int, dim: int, n_classes: int) -> Check:
    """A method that declares ``layer_option`` is fed only that layer (``Batch.layers``): with
    ``layer=1`` it must predict the same from a batch of layer 1 alone as from every layer."""
    import dataclasses

    import torch

    from serbench.contracts import method_model

    name = f"reads only the layer its option {spec.layer_option} names"
    ctx = dataclasses.replace(ctx, options={**ctx.options, spec.layer_option: "1"})
    try:
        torch.manual_seed(0)
        model = method_model(spec.name, spec.build(ctx)).to(ctx.device).eval()
        full = _synthetic_batch(spec, layers, dim, n_classes).to(ctx.device)
        alone = dataclasses.replace(full, features=[full.features[1]], layers=(1,))
        with torch.no_grad():
            diff = float((model.predict(full) - model.predict(alone)).abs().max())
    except Exception as exc:
        return Check(name, False, _describe(exc))
    return Check(name, diff < 1e-5, f"max difference {diff:.2e} between layer 1 alone and all")
