"""The tutorial dataset: 32 EmoDB files (4 speakers x 4 emotions x 2) listed in a CSV manifest.

A dataset plugin reads the corpus *as published* (here the folder holding EmoDB's ``wav/``) and
describes each utterance; serbench decodes the audio, checks the folds and caches the manifest.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Mapping, Sequence

from serbench import ConfigError, Fold, Utterance, leave_one_group_out

MANIFEST = Path(__file__).with_name("mini_emodb.csv")
LABELS = ("angry", "happy", "neutral", "sad")


def load_manifest(root: Path, options: Mapping[str, Any]) -> list[Utterance]:
    """One ``Utterance`` per CSV row; ``path`` is relative to the corpus folder ``root``."""
    if not (Path(root) / "wav").is_dir():
        raise ConfigError(f"{root} has no wav/ folder: point --data-root at EmoDB (the folder "
                          "holding wav/) or at the folder holding emodb/")
    with MANIFEST.open(newline="") as f:
        return [Utterance(key=Path(row["path"]).stem, path=row["path"], label=row["label"],
                          speaker=row["speaker"], gender=row["gender"])
                for row in csv.DictReader(f)]


def folds(utterances: Sequence[Utterance], protocol: str,
          options: Mapping[str, Any]) -> list[Fold]:
    """``loso``: each speaker is the test set once; dev is the next speaker, train the rest."""
    return leave_one_group_out(utterances, lambda u: u.speaker, dev_speakers=1)
