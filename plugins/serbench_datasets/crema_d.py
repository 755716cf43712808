"""CREMA-D, read from the publisher's repository layout.

``AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav`` (e.g. ``1001_DFA_ANG_XX.wav``); actor sex
from ``VideoDemographics.csv`` (``ActorID, Age, Sex, Race, Ethnicity``) next to ``AudioWAV/``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from serbench import ConfigError, DatasetSpec, Fold, Utterance, leave_one_group_out

NAME = "crema_d"
FILE_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})\.wav$")
EMOTIONS = {"ANG": "angry", "DIS": "disgusted", "FEA": "fearful", "HAP": "happy",
            "NEU": "neutral", "SAD": "sad"}
LABELS = tuple(sorted(EMOTIONS.values()))
SENTENCES = {
    "IEO": "It's eleven o'clock.",
    "TIE": "That is exactly what happened.",
    "IOM": "I'm on my way to the meeting.",
    "IWW": "I wonder what this is about.",
    "TAI": "The airplane is almost full.",
    "MTI": "Maybe tomorrow it will be cold.",
    "IWL": "I would like a new alarm clock.",
    "ITH": "I think I have a doctor's appointment.",
    "DFA": "Don't forget a jacket.",
    "ITS": "I think I've seen this before.",
    "TSI": "The surface is slick.",
    "WSI": "We'll stop in a couple of minutes.",
}
LEVELS = {"LO", "MD", "HI", "XX"}
FOLDS = 5


def _sexes(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise ConfigError(
            f"{path} is missing: it comes with the CREMA-D repository (github.com/"
            f"CheyneyComputerScience/CREMA-D) and gives each actor's sex"
        )
    sexes = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not {"ActorID", "Sex"} <= set(reader.fieldnames or ()):
            raise ConfigError(f"{path}: expected columns ActorID and Sex")
        for lineno, row in enumerate(reader, 2):
            sex = (row["Sex"] or "").strip().lower()
            if sex not in ("male", "female"):
                raise ConfigError(f"{path}:{lineno}: Sex {row['Sex']!r} is not Male or Female")
            sexes[row["ActorID"].strip()] = sex
    return sexes


def load_manifest(root: Path, options: Mapping[str, Any]) -> list[Utterance]:
    root = Path(root)
    audio = root / "AudioWAV"
    if not audio.is_dir():
        raise ConfigError(f"{root}: no AudioWAV/ folder; this is not the CREMA-D layout")
    sexes = _sexes(root / "VideoDemographics.csv")
    out = []
    for path in sorted(audio.glob("*.wav")):
        if path.name.startswith("."):
            continue
        m = FILE_NAME.match(path.name)
        if not m:
            raise ConfigError(f"{path}: not a CREMA-D file name (1001_DFA_ANG_XX.wav)")
        actor, sentence, emotion, level = m.groups()
        if emotion not in EMOTIONS or sentence not in SENTENCES or level not in LEVELS:
            raise ConfigError(f"{path}: unknown CREMA-D sentence, emotion or level code")
        if actor not in sexes:
            raise ConfigError(f"{path}: actor {actor} is not in VideoDemographics.csv")
        out.append(
            Utterance(
                key=path.stem,
                path=f"AudioWAV/{path.name}",
                label=EMOTIONS[emotion],
                speaker=actor,
                gender=sexes[actor],
                text=SENTENCES[sentence],
            )
        )
    if not out:
        raise ConfigError(f"{audio}: no CREMA-D wav files")
    return out


def folds(utterances: Sequence[Utterance], protocol: str, options: Mapping[str, Any]) -> list[Fold]:
    """``folds5``: actors dealt round-robin by id into 5 test groups; dev = 10 % of the rest."""
    actors = sorted({u.speaker for u in utterances})
    groups = [actors[k::FOLDS] for k in range(FOLDS)]
    return leave_one_group_out(
        utterances, lambda u: u.speaker, dev_speakers=0.1, groups_per_fold=groups,
        names=[f"fold{k + 1}" for k in range(FOLDS)],
    )


def spec() -> DatasetSpec:
    return DatasetSpec(
        name=NAME,
        labels=LABELS,
        protocols={
            "folds5": "5 speaker-independent folds (actors dealt round-robin by id); "
                      "dev = 10 % of the training actors",
        },
        load_manifest=load_manifest,
        folds=folds,
        description="CREMA-D: 7442 acted English clips, 91 actors, 6 emotions (open, ODbL)",
        licence="ODbL 1.0 (database), DbCL 1.0 (contents)",
        citation="Cao et al., CREMA-D: Crowd-sourced emotional multimodal actors dataset, "
                 "IEEE Trans. Affective Computing 2014",
        has_text=True,
        has_gender=True,
        dirnames=("CREMA-D", "crema_d", "crema-d"),
        obtain=(
            "clone https://github.com/CheyneyComputerScience/CREMA-D with git-lfs (AudioWAV/ and "
            "VideoDemographics.csv) and pass --data-root pointing at it"
        ),
    )
