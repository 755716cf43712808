"""The CLAP model: both towers learn, frozen parts stay frozen, temperatures stay clamped,
prediction is cosine similarity to the class prompts, and bad options are one clear error."""

from __future__ import annotations

import copy
import dataclasses
import functools
import math

import pytest
import torch
from serbench_clap import losses
from tiny_modules import TinyUpstream

from serbench import Batch, BuildContext, ConfigError, DatasetSpec, UpstreamSpec
from serbench.registry import collect

LABELS = ("angry", "neutral", "sad")


@functools.cache
def _minilm() -> torch.nn.Module:
    """The real offline text encoder, loaded once; every model gets its own copy."""
    return collect().upstreams.get("minilm").loader("cpu")


def _context(method: str, finetune: bool = False, **options) -> tuple[BuildContext, dict]:
    torch.manual_seed(0)
    spec = collect().methods.get(method)
    parts = {"upstream": TinyUpstream(), "text": copy.deepcopy(_minilm())}
    upstream = UpstreamSpec(name="tiny", loader=lambda device: parts["upstream"], num_layers=2,
                            hidden_size=4)
    minilm = collect().upstreams.get("minilm")
    text = dataclasses.replace(minilm, loader=lambda device: parts["text"])
    dataset = DatasetSpec(name="toy", labels=LABELS, protocols={"loso": ""},
                          load_manifest=lambda root, opts: [], folds=lambda u, p, o: [],
                          has_gender=True)
    encoders = {"minilm": text, "fbank": collect().upstreams.get("fbank")}
    ctx = BuildContext(
        labels=LABELS, options={**spec.defaults, "text_encoder": "minilm", "proj_dim": 8,
                                **options},
        upstream=upstream, dataset=dataset, device="cpu", seed=0, finetune_upstream=finetune,
        load_upstream=lambda: parts["upstream"], text_encoder=encoders.__getitem__)
    return ctx, parts


def _waveform_batch() -> Batch:
    gen = torch.Generator().manual_seed(1)
    return Batch(keys=list("abcd"), labels=torch.tensor([0, 1, 2, 0]),
                 lengths=torch.tensor([1600, 1200, 800, 1600]), speakers=list("wxyz"),
                 waveforms=torch.randn(4, 1600, generator=gen), genders=torch.tensor([0, 1, 1, 0]))


def _feature_batch(upstream: torch.nn.Module) -> Batch:
    """What the harness gives a frozen, pooled-input model: each layer mean-pooled, T = 1."""
    batch = _waveform_batch()
    with torch.no_grad():
        hidden, frames = upstream(batch.waveforms, batch.lengths)
    pooled = [torch.stack([h[i, :n].mean(0) for i, n in enumerate(frames.tolist())])[:, None]
              for h in hidden]
    return Batch(keys=batch.keys, labels=batch.labels, lengths=frames, speakers=batch.speakers,
                 features=pooled, genders=batch.genders)


@pytest.mark.parametrize("method", ["emo_clap", "ml_gemo", "sl_gemo"])
def test_gradients_reach_both_towers_when_both_are_fine_tuned(method: str) -> None:
    ctx, parts = _context(method, finetune=True, finetune_text=True)
    model = collect().methods.get(method).build(ctx)
    model.train()
    model.loss(_waveform_batch()).backward()
    for name, module in [("audio upstream", parts["upstream"]), ("text encoder", parts["text"]),
                         ("audio projection", model.audio_proj),
                         ("text projection", model.text_proj)]:
        # BERT's pooler head is the one part off the path: the tower pools the last hidden state
        grads = [p.grad for n, p in module.named_parameters() if ".pooler." not in n]
        assert grads and all(g is not None and g.abs().sum() > 0 for g in grads), name
    assert model.log_scale_a.grad.abs() > 0 and model.log_scale_t.grad.abs() > 0


def test_frozen_towers_are_not_trained_and_not_held() -> None:
    ctx, parts = _context("sl_gemo")
    model = collect().methods.get("sl_gemo").build(ctx)
    before = {k: v.clone() for k, v in {**parts["upstream"].state_dict(),
                                        **parts["text"].state_dict()}.items()}
    assert model.upstream is None and model.text_encoder is None
    # the frozen text tower ran once: its mean-pooled last layer of each class prompt is kept
    hidden, lengths = parts["text"](["The speaker feels angry.", "The speaker feels neutral.",
                                     "The speaker feels sad."])
    expected = torch.stack([hidden[-1][i, :n].mean(0) for i, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(model.prompt_features, expected)
    optimizer = model.configure_optimizer()
    batch = _feature_batch(parts["upstream"])
    model.train()
    first = model.loss(batch).item()
    for _ in range(30):
        optimizer.zero_grad()
        model.loss(batch).backward()
        optimizer.step()
    assert model.loss(batch).item() < first
    after = {**parts["upstream"].state_dict(), **parts["text"].state_dict()}
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_temperatures_stay_clamped_under_a_huge_learning_rate() -> None:
    ctx, parts = _context("emo_clap", lr=50.0)
    model = collect().methods.get("emo_clap").build(ctx)
    assert model.log_scale_a.item() == pytest.approx(math.log(1 / 0.07))
    optimizer = model.configure_optimizer()
    batch = _feature_batch(parts["upstream"])
    seen = set()
    for _ in range(60):
        optimizer.zero_grad()
        model.loss(batch).backward()
        optimizer.step()
        for p in (model.log_scale_a, model.log_scale_t):
            assert 0.0 <= p.item() <= math.log(100.0)
            seen.add(round(p.item(), 6))
    assert seen & {0.0, round(math.log(100.0), 6)}  # the steps did push against a bound


def test_prediction_is_cosine_similarity_to_the_class_prompts() -> None:
    ctx, parts = _context("emo_clap")
    model = collect().methods.get("emo_clap").build(ctx).eval()
    batch = _feature_batch(parts["upstream"])
    with torch.inference_mode():
        scores = model.predict(batch)
        audio = model.audio_proj(torch.stack([f[:, 0] for f in batch.features])[1])
        text = model.text_proj(model.prompt_features)
    cosine = torch.nn.functional.cosine_similarity(audio[:, None], text[None], dim=-1)
    torch.testing.assert_close(scores, cosine)
    assert scores.shape == (4, 3)


def test_the_model_loss_is_the_pure_loss_of_its_embeddings() -> None:
    ctx, parts = _context("ml_gemo", target_norm="softmax")
    model = collect().methods.get("ml_gemo").build(ctx)
    batch = _feature_batch(parts["upstream"])
    audio = model.audio_embeddings(batch)
    text = model.class_embeddings()[batch.labels]
    c_a, c_t = losses.logits(audio, text, model.log_scale_a, model.log_scale_t)
    expected = losses.ml_gemo(c_a, c_t, batch.labels, batch.genders, 0.9, "softmax")
    torch.testing.assert_close(model.loss(batch), expected)


def test_emo_clap_learns_to_tell_the_classes_apart() -> None:
    ctx, _ = _context("emo_clap", layer="weighted", lr=1e-2)
    model = collect().methods.get("emo_clap").build(ctx)
    labels = torch.arange(24) % 3
    centres = torch.randn(3, 4) * 2
    features = [(centres[labels] + 0.2 * torch.randn(24, 4))[:, None] for _ in range(2)]
    batch = Batch(keys=[str(i) for i in range(24)], labels=labels, lengths=torch.ones(24),
                  speakers=["s"] * 24, features=features)
    optimizer = model.configure_optimizer()
    model.train()
    for _ in range(150):
        optimizer.zero_grad()
        model.loss(batch).backward()
        optimizer.step()
    model.eval()
    with torch.inference_mode():
        assert model.predict(batch).argmax(1).eq(labels).all()


def test_gender_methods_require_gender_and_say_so_without_it() -> None:
    specs = collect().methods
    assert specs.get("ml_gemo").requires == {"gender"} == specs.get("sl_gemo").requires
    assert specs.get("emo_clap").requires == frozenset()
    assert (specs.get("ml_gemo").defaults["alpha_e"], specs.get("sl_gemo").defaults["alpha_e"]) \
        == (0.9, 0.8)
    ctx, parts = _context("ml_gemo")
    model = specs.get("ml_gemo").build(ctx)
    batch = _feature_batch(parts["upstream"])
    batch.genders = None
    with pytest.raises(ValueError, match="method ml_gemo needs the speakers' genders"):
        model.loss(batch)


@pytest.mark.parametrize("options, message", [
    ({"target_norm": "l1"}, "method emo_clap: option target_norm must be rowsum or softmax, "
                            "got 'l1'"),
    ({"prompt": "The speaker feels {mood}."}, "method emo_clap: option prompt must contain "
     "{label} or {adjective} and no other field, got 'The speaker feels {mood}.'"),
    ({"prompt": "Emotional speech."}, "method emo_clap: option prompt must contain {label} or "
     "{adjective} and no other field, got 'Emotional speech.'"),
    ({"text_encoder": "fbank"}, "method emo_clap: option text_encoder 'fbank' is an audio "
                                "upstream, not a text encoder"),
    ({"layer": "first"}, "method emo_clap: option layer must be 'weighted', 'last' or a layer "
     "index in [-2, 1] (the upstream has 2 hidden states), got 'first'"),
])
def test_bad_options_are_one_clear_error(options: dict, message: str) -> None:
    ctx, _ = _context("emo_clap", **options)
    with pytest.raises(ConfigError) as err:
        collect().methods.get("emo_clap").build(ctx)
    assert str(err.value) == message


def test_prompts_use_the_emotion_adjective_and_must_differ() -> None:
    from serbench_clap.prompts import class_prompts

    emodb = collect().datasets.get("emodb").labels
    assert class_prompts(emodb, "The speaker feels {adjective}.", "emo_clap") == [
        f"The speaker feels {a}." for a in
        ("angry", "bored", "disgusted", "fearful", "happy", "neutral", "sad")]
    assert class_prompts(("ang", "hap", "neu", "sad"), "A {adjective} voice ({label}).", "m") == [
        "A angry voice (ang).", "A happy voice (hap).", "A neutral voice (neu).",
        "A sad voice (sad)."]
    with pytest.raises(ConfigError, match="gives two classes the same sentence"):
        class_prompts(("hap", "happy"), "{adjective}", "emo_clap")


def test_alpha_e_outside_zero_one_is_one_clear_error() -> None:
    ctx, _ = _context("sl_gemo", alpha_e=1.5)
    with pytest.raises(ConfigError) as err:
        collect().methods.get("sl_gemo").build(ctx)
    assert str(err.value) == "method sl_gemo: option alpha_e must be in [0, 1], got 1.5"
