"""Class prompts for the text tower: one sentence per emotion, from a template option.

``{label}`` is the dataset's label as written (``anger``, ``neu``); ``{adjective}`` is how a
speaker feels (``angry``, ``neutral``) for the label names and codes corpora use, else the label.
"""

from __future__ import annotations

import string
from typing import Sequence

from serbench import ConfigError

ADJECTIVES = {
    "anger": "angry", "angry": "angry", "ang": "angry",
    "happiness": "happy", "happy": "happy", "hap": "happy", "joy": "happy",
    "sadness": "sad", "sad": "sad",
    "neutral": "neutral", "neu": "neutral",
    "fear": "fearful", "fearful": "fearful", "fea": "fearful",
    "disgust": "disgusted", "dis": "disgusted",
    "boredom": "bored", "bored": "bored",
    "surprise": "surprised", "surprised": "surprised", "sur": "surprised",
    "calm": "calm",
    "excitement": "excited", "excited": "excited", "exc": "excited",
    "frustration": "frustrated", "fru": "frustrated",
    "contempt": "contemptuous",
}
FIELDS = frozenset({"label", "adjective"})


def adjective(label: str) -> str:
    key = label.strip().lower()
    return ADJECTIVES.get(key, key.replace("_", " "))


def class_prompts(labels: Sequence[str], template: str, method: str) -> list[str]:
    """One prompt per label; a template with other fields, or one that gives two classes the
    same sentence, is a configuration error."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError:  # unbalanced braces
        fields = set()
    if fields - FIELDS or not fields:
        raise ConfigError(
            f"method {method}: option prompt must contain {{label}} or {{adjective}} and no other "
            f"field, got {template!r}"
        )
    prompts = [template.format(label=lab, adjective=adjective(lab)) for lab in labels]
    if len(set(prompts)) < len(prompts):
        raise ConfigError(
            f"method {method}: option prompt {template!r} gives two classes the same sentence; "
            f"use {{label}}"
        )
    return prompts
