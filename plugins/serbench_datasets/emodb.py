"""EmoDB (Berlin Database of Emotional Speech), read from the official ``download.zip`` layout.

File names are ``SSTTTEV.wav``: speaker, text code, German emotion initial, version. Transcripts
come from the text code, in English by default (the text encoders serbench ships are English);
option ``text_language=de`` gives the original German sentences.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from serbench import ConfigError, DatasetSpec, Fold, Utterance, leave_one_group_out

NAME = "emodb"
LABELS = ("angry", "bored", "disgusted", "fearful", "happy", "neutral", "sad")

# the official letters (German initials); some copies on the web map them wrongly
EMOTIONS = {
    "W": "angry",  # Wut
    "L": "bored",  # Langeweile
    "E": "disgusted",  # Ekel
    "A": "fearful",  # Angst
    "F": "happy",  # Freude
    "T": "sad",  # Trauer
    "N": "neutral",
}

GENDERS = {
    "03": "male", "08": "female", "09": "female", "10": "male", "11": "male",
    "12": "male", "13": "female", "14": "female", "15": "male", "16": "female",
}

TEXTS = {
    "a01": ("Der Lappen liegt auf dem Eisschrank.",
            "The tablecloth is lying on the fridge."),
    "a02": ("Das will sie am Mittwoch abgeben.",
            "She will hand it in on Wednesday."),
    "a04": ("Heute abend könnte ich es ihm sagen.",
            "Tonight I could tell him."),
    "a05": ("Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
            "The black sheet of paper is located up there besides the piece of timber."),
    "a07": ("In sieben Stunden wird es soweit sein.",
            "In seven hours it will be."),
    "b01": ("Was sind denn das für Tüten, die da unter dem Tisch stehen?",
            "What about the bags standing there under the table?"),
    "b02": ("Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
            "They just carried it upstairs and now they are going down again."),
    "b03": ("An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
            "Currently at the weekends I always went home and saw Agnes."),
    "b09": ("Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
            "I will just discard this and then go for a drink with Karl."),
    "b10": ("Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
            "It will be in the place where we always store it."),
}

FILE_NAME = re.compile(r"^(\d\d)([ab]\d\d)([WLEAFTN])([a-z])\.wav$")


def load_manifest(root: Path, options: Mapping[str, Any]) -> list[Utterance]:
    """Every ``wav/*.wav`` of the official layout; macOS ``._`` files are skipped."""
    root = Path(root)
    wav = root / "wav"
    if not wav.is_dir():
        raise ConfigError(
            f"{root}: no wav/ folder, so this is not Emo-DB; point --data-root at the unpacked "
            f"download.zip (or the folder holding emodb/), or run `serbench data download emodb "
            f"--data-root {root}`"
        )
    language = options.get("text_language", "en")
    if language not in ("en", "de"):
        raise ConfigError(f"emodb option text_language={language!r}: use 'en' or 'de'")
    column = 0 if language == "de" else 1
    out = []
    for path in sorted(wav.glob("*.wav")):
        if path.name.startswith("._"):
            continue
        m = FILE_NAME.match(path.name)
        if not m:
            raise ConfigError(
                f"{path}: not an Emo-DB file name (SSTTTEV.wav, e.g. 03a01Fa.wav); remove it"
            )
        speaker, text, emotion, _ = m.groups()
        if speaker not in GENDERS or text not in TEXTS:
            raise ConfigError(
                f"{path}: unknown Emo-DB speaker {speaker!r} or text {text!r}; remove it"
            )
        out.append(
            Utterance(
                key=path.stem,
                path=f"wav/{path.name}",
                label=EMOTIONS[emotion],
                speaker=speaker,
                gender=GENDERS[speaker],
                text=TEXTS[text][column],
            )
        )
    if not out:
        raise ConfigError(f"{wav}: no Emo-DB wav files found")
    return out


def folds(utterances: Sequence[Utterance], protocol: str, options: Mapping[str, Any]) -> list[Fold]:
    """``loso``: each fold tests one speaker; dev is the next speaker in id order (cyclic)."""
    return leave_one_group_out(utterances, lambda u: u.speaker)


def spec() -> DatasetSpec:
    from .download import download_emodb

    return DatasetSpec(
        name=NAME,
        labels=LABELS,
        protocols={"loso": "10 folds, leave one speaker out; dev = the next speaker in id order"},
        load_manifest=load_manifest,
        folds=folds,
        description="EmoDB: 535 German acted utterances, 10 speakers, 7 emotions (open, CC0-1.0)",
        download=download_emodb,
        licence="CC0-1.0",
        citation="Burkhardt et al., A database of German emotional speech, Interspeech 2005",
        has_text=True,
        has_gender=True,
        options={"text_language": "en"},
        dirnames=("emodb",),
        obtain="the Emo-DB download.zip unpacked, with its wav/ folder",
    )
