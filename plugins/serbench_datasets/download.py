"""Downloads of open corpora: resumable (HTTP Range), checksum-verified, unpacked in place.

The archive is fetched to ``<corpus>/.<name>.part`` (a later call resumes it), checked against its
sha256 when one is known, unpacked into a scratch folder, every file checked against the corpus's
table of sha256 sums, and only then moved into place. Nothing already in the corpus folder is
overwritten by a file that failed its check.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Mapping

from serbench.specs import ConfigError

EMODB_URL = "http://emodb.bilderbar.info/download/download.zip"
CHUNK = 1 << 20


class DownloadError(ConfigError):
    """The corpus could not be fetched or did not match its checksums."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, dest: Path, *, sha256: str | None = None, timeout: float = 30.0,
          by_hand: str = "") -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part`` with a Range request if present."""
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "serbench", **({"Range": f"bytes={have}-"} if have else {})}
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part file is already complete
            return _finish(part, dest, sha256, url)
        raise DownloadError(f"{url} answered HTTP {exc.code} {exc.reason}; {by_hand}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot reach {url} ({reason}); {by_hand}") from None
    with resp:
        resumed = bool(have) and resp.status == 206
        if resumed and _range_start(resp) != have:
            part.unlink()
            raise DownloadError(f"{url} answered a different byte range than asked; the partial "
                                f"file was removed, run the command again")
        total = _total(resp, have if resumed else 0)
        done = have if resumed else 0
        with open(part, "ab" if resumed else "wb") as out:
            for block in iter(lambda: resp.read(CHUNK), b""):
                out.write(block)
                done += len(block)
                _progress(dest.name, done, total)
    if total and done < total:
        raise DownloadError(
            f"the download of {url} stopped at {done} of {total} bytes; run the command again "
            f"to resume it"
        )
    return _finish(part, dest, sha256, url)


def _range_start(resp: object) -> int | None:
    value = resp.headers.get("Content-Range", "")  # "bytes 100-999/1000"
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _total(resp: object, offset: int) -> int | None:
    length = resp.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _progress(name: str, done: int, total: int | None) -> None:
    if not sys.stderr.isatty():
        return
    share = f" {100 * done / total:5.1f}%" if total else ""
    print(f"\r{name}: {done / 1e6:8.1f} MB{share}", end="", file=sys.stderr, flush=True)


def _finish(part: Path, dest: Path, sha256: str | None, url: str) -> Path:
    if sha256 is not None:
        got = _sha256(part)
        if got != sha256:
            part.unlink()
            raise DownloadError(
                f"{url}: sha256 {got} does not match the expected {sha256}; the partial file was "
                f"removed, run the command again"
            )
    os.replace(part, dest)
    return dest


def unpack(archive: Path, root: Path, expected: Mapping[str, str]) -> None:
    """Unzip ``archive`` into ``root`` after checking every file listed in ``expected``."""
    scratch = root / ".unpack"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                name = Path(info.filename)
                if name.is_absolute() or ".." in name.parts:
                    raise DownloadError(f"{archive}: unsafe member path {info.filename!r}")
            zf.extractall(scratch)
    except zipfile.BadZipFile as exc:
        archive.unlink()
        raise DownloadError(f"{archive}: not a valid zip ({exc}); run the command again") from None
    for rel, digest in expected.items():
        path = scratch / rel
        if not path.is_file():
            raise DownloadError(f"{archive}: {rel} is missing from the archive")
        if _sha256(path) != digest:
            raise DownloadError(f"{archive}: {rel} does not match its sha256; delete the archive "
                                f"and download it again")
    for item in sorted(scratch.iterdir()):
        target = root / item.name
        if target.is_dir() and item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
    shutil.rmtree(scratch, ignore_errors=True)


def verified(root: Path, expected: Mapping[str, str]) -> bool:
    """Whether ``root`` already holds every expected file with the right sum."""
    return all((root / rel).is_file() and _sha256(root / rel) == d for rel, d in expected.items())


def emodb_checksums() -> dict[str, str]:
    """sha256 of every file of the official Emo-DB archive (measured on an unchanged copy)."""
    return json.loads((Path(__file__).with_name("emodb_sha256.json")).read_text())


def download_emodb(root: Path, *, url: str | None = None, sha256: str | None = None,
                   files: Mapping[str, str] | None = None) -> Path:
    """Fetch the publisher's ``download.zip`` into ``root`` (the ``emodb`` folder).

    ``url`` defaults to ``$SERBENCH_EMODB_URL``, then the Emo-DB site. The publisher gives no
    checksum for the archive, so each unpacked file is verified against ``files`` (default: the
    sha256 table shipped with this plugin); ``sha256`` checks the archive itself when known.
    """
    root = Path(root)
    url = url or os.environ.get("SERBENCH_EMODB_URL") or EMODB_URL
    files = emodb_checksums() if files is None else files
    if verified(root, files):
        return root
    by_hand = (f"without network, download {EMODB_URL} elsewhere and unzip it into {root} "
               f"(it must hold wav/ with 535 files)")
    archive = fetch(url, root / ".download.zip", sha256=sha256, by_hand=by_hand)
    unpack(archive, root, files)
    archive.unlink()
    return root
