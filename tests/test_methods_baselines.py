"""The ``linear``, ``mlp`` and ``finetune`` methods: the architectures as documented, layer choice,
option errors, and the optimiser contract with the training loop."""

from __future__ import annotations

import pytest
import torch
from tiny_modules import TinyUpstream

from serbench import Batch, BuildContext, ConfigError, DatasetSpec, UpstreamSpec
from serbench.registry import collect

LABELS = ("anger", "neutral", "sadness")


def _context(method: str, num_layers: int = 3, hidden_size: int = 4, **options) -> BuildContext:
    spec = collect().methods.get(method)
    upstream = UpstreamSpec(name="tiny", loader=lambda device: None, num_layers=num_layers,
                            hidden_size=hidden_size)
    dataset = DatasetSpec(name="toy", labels=LABELS, protocols={"loso": ""},
                          load_manifest=lambda root, opts: [], folds=lambda u, p, o: [])
    return BuildContext(labels=LABELS, options={**spec.defaults, **options}, upstream=upstream,
                        dataset=dataset, device="cpu", seed=0, finetune_upstream=False,
                        load_upstream=lambda: None, text_encoder=lambda name: None)


def _batch(features: list[torch.Tensor], lengths: list[int], labels: list[int]) -> Batch:
    n = len(labels)
    return Batch(keys=[str(i) for i in range(n)], labels=torch.tensor(labels),
                 lengths=torch.tensor(lengths), speakers=["s"] * n, features=features)


def test_linear_equals_superb_order_and_its_pooled_input() -> None:
    torch.manual_seed(0)
    ctx = _context("linear")
    model = collect().methods.get("linear").build(ctx)
    with torch.no_grad():
        model.layers.weights.copy_(torch.tensor([0.0, 1.0, 2.0]))
    frames = [torch.randn(2, 5, 4) for _ in range(3)]
    lengths = [5, 2]
    # SUPERB: weighted sum, Linear(D, 256) on every frame, mean over the valid frames, Linear
    w = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0)
    mixed = sum(w[i] * frames[i] for i in range(3))
    projected = model.project(mixed)
    pooled = torch.stack([projected[0, :5].mean(0), projected[1, :2].mean(0)])
    expected = model.classify(pooled)
    got = model.predict(_batch(frames, lengths, [0, 1]))
    torch.testing.assert_close(got, expected)
    # the harness's pooled input: each layer mean-pooled over valid frames, T = 1
    pre = [torch.stack([f[0, :5].mean(0), f[1, :2].mean(0)])[:, None] for f in frames]
    torch.testing.assert_close(model.predict(_batch(pre, lengths, [0, 1])), expected)
    assert model.project.out_features == 256 and model.classify.out_features == 3


def test_linear_applies_its_two_layers_as_one_product_with_the_same_gradients() -> None:
    torch.manual_seed(0)
    model = collect().methods.get("linear").build(_context("linear"))
    pre = [torch.randn(5, 1, 4) for _ in range(3)]
    batch = _batch(pre, [1] * 5, [0, 1, 2, 1, 0])
    model.loss(batch).backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    w = torch.softmax(model.layers.weights, 0)
    mixed = sum(w[i] * pre[i][:, 0] for i in range(3))
    logits = model.classify(model.project(mixed))  # the layers one after the other
    torch.nn.functional.cross_entropy(logits, batch.labels).backward()
    for name, param in model.named_parameters():
        torch.testing.assert_close(got[name], param.grad, rtol=1e-5, atol=1e-7, msg=name)
    assert got["project.weight"].abs().sum() > 0 and got["layers.weights"].abs().sum() > 0


def test_mlp_applies_relu_per_frame_before_pooling() -> None:
    torch.manual_seed(0)
    model = collect().methods.get("mlp").build(_context("mlp", layer="last"))
    frames = [torch.randn(2, 4, 4) for _ in range(3)]
    hidden = torch.relu(model.frame[0](frames[2]))
    expected = model.classify(torch.stack([hidden[0, :4].mean(0), hidden[1, :1].mean(0)]))
    torch.testing.assert_close(model.predict(_batch(frames, [4, 1], [0, 2])), expected)
    assert collect().methods.get("mlp").inputs == "frames"


@pytest.mark.parametrize("choice, picked", [("last", 2), ("0", 0), ("-2", 1)])
def test_layer_option_picks_one_hidden_state(choice: str, picked: int) -> None:
    model = collect().methods.get("linear").build(_context("linear", layer=choice))
    assert not any("weights" in n for n, _ in model.named_parameters())
    frames = [torch.full((1, 1, 4), float(i)) for i in range(3)]
    assert model.layers(frames).flatten().tolist() == [float(picked)] * 4


def test_a_bad_layer_option_is_one_clear_error() -> None:
    with pytest.raises(ConfigError) as err:
        collect().methods.get("linear").build(_context("linear", layer="middle"))
    assert str(err.value) == (
        "method linear: option layer must be 'weighted', 'last' or a layer index in [-3, 2] "
        "(the upstream has 3 hidden states), got 'middle'"
    )


def test_linear_learns_a_separable_task_with_the_loops_optimiser() -> None:
    torch.manual_seed(0)
    ctx = _context("linear", num_layers=2, hidden_size=8)
    model = collect().methods.get("linear").build(ctx)
    labels = torch.arange(30) % 3
    centres = torch.randn(3, 8) * 3
    feats = [(centres[labels] + 0.3 * torch.randn(30, 8))[:, None] for _ in range(2)]
    batch = _batch(feats, [1] * 30, labels.tolist())
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                            lr=ctx.options["lr"], weight_decay=0.0)
    model.train()
    first = model.loss(batch).item()
    for _ in range(200):
        opt.zero_grad()
        model.loss(batch).backward()
        opt.step()
    model.eval()
    with torch.inference_mode():
        assert model.predict(batch).argmax(1).eq(labels).all()
    assert model.loss(batch).item() < first / 10


def _finetune_context(upstream: torch.nn.Module, **options) -> BuildContext:
    ctx = _context("finetune", num_layers=2, hidden_size=4, **options)
    ctx.finetune_upstream = True
    ctx.load_upstream = lambda: upstream
    return ctx


def test_finetune_trains_upstream_and_head_at_their_own_rates() -> None:
    torch.manual_seed(0)
    upstream = TinyUpstream()
    model = collect().methods.get("finetune").build(_finetune_context(upstream))
    opt = model.configure_optimizer()
    assert [g["lr"] for g in opt.param_groups] == [2e-5, 1e-3]
    assert [len(g["params"]) for g in opt.param_groups] == [4, 2]  # conv, mix | head w, b
    before = upstream.conv.weight.detach().clone()
    batch = Batch(keys=["a", "b"], labels=torch.tensor([0, 2]), lengths=torch.tensor([1600, 800]),
                  speakers=["s", "t"], waveforms=torch.randn(2, 1600))
    model.train()
    opt.zero_grad()
    model.loss(batch).backward()
    opt.step()
    assert not torch.equal(before, upstream.conv.weight)
    # the head reads the last hidden state, mean-pooled over each utterance's own frames
    hidden, frames = upstream(batch.waveforms, batch.lengths)
    assert frames.tolist() == [10, 5]
    pooled = torch.stack([hidden[1][0, :10].mean(0), hidden[1][1, :5].mean(0)])
    torch.testing.assert_close(model.predict(batch), model.classify(pooled))


def test_finetune_on_a_weight_free_upstream_optimises_the_head_only() -> None:
    fbank = collect().upstreams.get("fbank")
    ctx = _context("finetune", num_layers=1, hidden_size=80)
    ctx.finetune_upstream, ctx.upstream = True, fbank
    ctx.load_upstream = lambda: fbank.loader("cpu")
    model = collect().methods.get("finetune").build(ctx)
    opt = model.configure_optimizer()
    assert [(g["lr"], len(g["params"])) for g in opt.param_groups] == [(1e-3, 2)]
    batch = Batch(keys=["a"], labels=torch.tensor([1]), lengths=torch.tensor([16000]),
                  speakers=["s"], waveforms=torch.randn(1, 16000))
    assert model.predict(batch).shape == (1, 3)
