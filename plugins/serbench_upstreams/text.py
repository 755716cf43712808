"""Text encoders (BERT, RoBERTa, MiniLM, any BERT-like model) through ``transformers``.

Texts are right-padded with an attention mask, so every valid token equals the text's own result.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._common import resolve_device
from .hub import model_dir, revision_of

MAX_TOKENS = 512


class TextEncoder(nn.Module):
    """``forward(texts: list[str]) -> (L + 1 hidden states (B, T, D), token lengths (B,))``."""

    def __init__(self, model: Any, tokenizer: Any, revision: str) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.revision = revision
        self.max_tokens = min(int(getattr(tokenizer, "model_max_length", MAX_TOKENS)), MAX_TOKENS)

    def forward(self, texts: list[str]) -> tuple[list[torch.Tensor], torch.Tensor]:
        device = next(self.model.parameters()).device
        batch = self.tokenizer(list(texts), padding=True, truncation=True,
                               max_length=self.max_tokens, return_tensors="pt").to(device)
        out = self.model(**batch, output_hidden_states=True)
        mask = batch["attention_mask"]
        valid = mask[..., None].to(out.hidden_states[0].dtype)
        return [h * valid for h in out.hidden_states], mask.sum(1).long()


def load(ref: str, revision: str | None, device: Any) -> TextEncoder:
    """Load a text encoder and its tokenizer from a hub id or a folder."""
    import transformers as tf

    tf.utils.logging.disable_progress_bar()  # a bar per run drowns serbench's own output

    folder = model_dir(ref, revision)
    tokenizer = tf.AutoTokenizer.from_pretrained(folder)
    model = tf.AutoModel.from_pretrained(folder)
    encoder = TextEncoder(model, tokenizer, revision_of(folder))
    return encoder.to(resolve_device(device)).eval()
