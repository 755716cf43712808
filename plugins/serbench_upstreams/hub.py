"""Where a Hugging Face model's files come from: a local folder, or the hub cache (downloading when
online), with the resolved revision a run records, and one clear error when neither works.

No torch or transformers here: resolving a spec reads only JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from serbench import ConfigError

FILE_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors"]
TRUE = {"1", "on", "yes", "true"}


def offline() -> bool:
    """``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` as set now (the hub library reads them once)"""
    return any(os.environ.get(v, "").strip().lower() in TRUE
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def is_local(ref: str) -> bool:
    ref = str(ref)
    return ref.startswith(("/", ".", "~")) or Path(ref).expanduser().is_dir()


def download_command(ref: str, revision: str | None) -> str:
    """The download command of the installed huggingface_hub: ``hf`` (0.34 and later; 1.0 dropped
    ``huggingface-cli``) or ``huggingface-cli`` (older releases)."""
    import importlib.metadata as md

    try:
        scripts = {ep.name for ep in md.distribution("huggingface_hub").entry_points
                   if ep.group == "console_scripts"}
    except md.PackageNotFoundError:
        scripts = set()
    tool = "hf" if "hf" in scripts or not scripts else "huggingface-cli"
    rev = f" --revision {revision}" if revision and revision != "main" else ""
    return f"{tool} download {ref}{rev}"


def fetch_error(ref: str, revision: str | None, why: str) -> ConfigError:
    """The one sentence a user gets when a hub model is neither cached nor downloadable."""
    from huggingface_hub import constants

    return ConfigError(
        f"model {ref!r} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and cannot "
        f"be downloaded ({why}): fetch it on a machine with network with "
        f"`{download_command(ref, revision)}` and point HF_HOME at that cache, or pass a local "
        "folder as hf:/path/to/model"
    )


def check_available(ref: str, revision: str | None) -> None:
    """Raise the fetch error now, while planning, when a run could not get the model: not cached
    and offline (or the hub unreachable). Nothing is downloaded here."""
    if is_local(ref):
        model_dir(ref)
    elif _cached(ref, revision, config_only=False) is None:
        _reach(ref, revision)


def model_dir(ref: str, revision: str | None = None, config_only: bool = False) -> Path:
    """A folder holding the model's files: ``ref`` itself, or its snapshot in the hub cache.

    Weights are fetched as safetensors, falling back to ``*.bin`` for repositories without them.
    """
    if is_local(ref):
        folder = Path(ref).expanduser().resolve()
        if not (folder / "config.json").is_file():
            raise ConfigError(f"model folder {str(folder)!r} has no config.json: expected a folder "
                              "written by save_pretrained()")
        return folder
    folder = _cached(ref, revision, config_only) or _download(ref, revision, config_only)
    if not (folder / "config.json").is_file() or not (config_only or _weights(folder)):
        raise fetch_error(ref, revision, "the cached snapshot lacks config.json or weights")
    return folder


def _patterns(config_only: bool) -> list[str]:
    return ["config.json", "preprocessor_config.json"] if config_only else FILE_PATTERNS


def _cached(ref: str, revision: str | None, config_only: bool) -> Path | None:
    """The cached snapshot, without touching the network (a pinned commit never changes)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(ref, revision=revision, local_files_only=True,
                                        allow_patterns=_patterns(config_only)))
    except LocalEntryNotFoundError:
        return None
    complete = (folder / "config.json").is_file() and (config_only or bool(_weights(folder)))
    return folder if complete else None


def _download(ref: str, revision: str | None, config_only: bool) -> Path:
    """Fetch from the hub once it answers."""
    _reach(ref, revision)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        folder = Path(snapshot_download(ref, revision=revision,
                                        allow_patterns=_patterns(config_only)))
        if not config_only and not _weights(folder):
            folder = Path(snapshot_download(ref, revision=revision, allow_patterns=["*.bin"]))
    except (HfHubHTTPError, OSError) as exc:
        raise fetch_error(ref, revision, _reason(exc)) from None
    return folder


def _reach(ref: str, revision: str | None) -> None:
    """Fail at once without network instead of retrying for half a minute."""
    if offline():
        raise fetch_error(ref, revision, "HF_HUB_OFFLINE is set")
    from huggingface_hub import HfApi

    try:  # one quick request: the hub client retries failed downloads with back-off
        HfApi().model_info(ref, revision=revision, timeout=10)
    except Exception as exc:  # any failure to reach the hub means the same to the user
        raise fetch_error(ref, revision, _reason(exc)) from None


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__


def _weights(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin")]


def read_json(folder: Path, name: str) -> dict[str, Any]:
    path = folder / name
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc}); re-save or re-download the model"
                          ) from None


def revision_of(folder: Path) -> str:
    """The hub commit of a cache snapshot, or a hash of a local folder's weight files."""
    if folder.parent.name == "snapshots":
        return folder.name
    return folder_revision(folder)


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5")


def folder_revision(folder: Path) -> str:
    """A hash of a local model folder's weight files (names and contents): what a run records.

    File digests are memoised by path and stat signature (``serbench.data.features.file_digests``):
    every worker of a sweep names the same revision without reading the weights again.
    """
    from serbench import file_digests

    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        return "none"
    digest = hashlib.sha256()
    for path, content in zip(files, file_digests(files), strict=True):
        digest.update(f"{path.relative_to(folder)}\0{content}\n".encode())
    return "sha256:" + digest.hexdigest()[:16]
