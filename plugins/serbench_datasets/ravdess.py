"""RAVDESS speech set (``Audio_Speech_Actors_01-24.zip`` from Zenodo record 1188976).

File names are seven two-digit fields ``MM-VV-EE-II-SS-RR-AA.wav``: modality, vocal channel,
emotion, intensity, statement, repetition, actor (odd = male, even = female). Song files
(vocal channel 02, a separate archive) are skipped if they share the folders.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from serbench import ConfigError, DatasetSpec, Fold, Utterance, leave_one_group_out

NAME = "ravdess"
FILE_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.wav$")
EMOTIONS = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful",
    "07": "disgusted", "08": "surprised",
}
LABELS = tuple(sorted(EMOTIONS.values()))
STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}


def load_manifest(root: Path, options: Mapping[str, Any]) -> list[Utterance]:
    root = Path(root)
    out = []
    for path in sorted(root.glob("Actor_*/*.wav")):
        if path.name.startswith("."):
            continue
        m = FILE_NAME.match(path.name)
        if not m:
            raise ConfigError(f"{path}: not a RAVDESS file name (MM-VV-EE-II-SS-RR-AA.wav)")
        modality, channel, emotion, intensity, statement, _, actor = m.groups()
        if channel == "02":  # song
            continue
        if (modality != "03" or channel != "01" or emotion not in EMOTIONS
                or intensity not in ("01", "02") or statement not in STATEMENTS
                or not 1 <= int(actor) <= 24):
            raise ConfigError(f"{path}: a field of the RAVDESS file name is out of range")
        if path.parent.name != f"Actor_{actor}":
            raise ConfigError(f"{path}: actor {actor} filed under {path.parent.name}/")
        out.append(
            Utterance(
                key=path.stem,
                path=f"{path.parent.name}/{path.name}",
                label=EMOTIONS[emotion],
                speaker=actor,
                gender="male" if int(actor) % 2 else "female",
                text=STATEMENTS[statement],
            )
        )
    if not out:
        raise ConfigError(f"{root}: no Actor_*/*.wav speech files; unzip "
                          f"Audio_Speech_Actors_01-24.zip here or run `serbench data download "
                          f"ravdess --data-root {root}`")
    return out


def folds(utterances: Sequence[Utterance], protocol: str, options: Mapping[str, Any]) -> list[Fold]:
    """``loso``: actors in id order, ``actors_per_fold`` (default 4: 2 male, 2 female) held out
    per fold; dev = the next 2 actors. ``actors_per_fold=1`` is plain leave-one-actor-out."""
    size = int(options.get("actors_per_fold", 4))
    if not 1 <= size <= 12:
        raise ConfigError(f"ravdess option actors_per_fold={size}: use 1 to 12")
    actors = sorted({u.speaker for u in utterances})
    blocks = [actors[i:i + size] for i in range(0, len(actors), size)]
    return leave_one_group_out(
        utterances, lambda u: u.speaker, dev_speakers=2, groups_per_fold=blocks,
        names=[f"actors{b[0]}-{b[-1]}" if len(b) > 1 else f"actor{b[0]}" for b in blocks],
    )


def spec() -> DatasetSpec:
    from .download import download_ravdess

    return DatasetSpec(
        name=NAME,
        labels=LABELS,
        protocols={
            "loso": "6 folds of 4 actors (2 male, 2 female) left out; dev = the next 2 actors",
        },
        load_manifest=load_manifest,
        folds=folds,
        description="RAVDESS speech: 1440 acted English utterances, 24 actors, 8 emotions (open)",
        download=download_ravdess,
        licence="CC BY-NC-SA 4.0",
        citation="Livingstone & Russo, The Ryerson Audio-Visual Database of Emotional Speech and "
                 "Song (RAVDESS), PLoS ONE 2018",
        has_text=True,
        has_gender=True,
        options={"actors_per_fold": 4},
        dirnames=("ravdess", "RAVDESS", "Audio_Speech_Actors_01-24"),
        obtain="Audio_Speech_Actors_01-24.zip from https://zenodo.org/records/1188976, unzipped",
    )
