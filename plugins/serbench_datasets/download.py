"""Downloads of open corpora: resumable (HTTP Range), checksum-verified, unpacked in place.

The archive is fetched to ``<corpus>/.<name>.part`` (a later call resumes it), checked against its
sha256 when one is known, unpacked into a scratch folder, every file checked against the corpus's
table of sha256 sums, and only then moved into place. Nothing already in the corpus folder is
overwritten by a file that failed its check.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Mapping

from serbench import ConfigError

EMODB_URL = "http://emodb.bilderbar.info/download/download.zip"
RAVDESS_URL = "https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip"
RAVDESS_MD5 = "bc696df654c87fed845eb13823edef8a"  # published by Zenodo for record 1188976
CHUNK = 1 << 20


class DownloadError(ConfigError):
    """The corpus could not be fetched or did not match its checksums."""


def _digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, dest: Path, *, checksum: tuple[str, str] | None = None,
          timeout: float = 30.0, by_hand: str = "") -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part`` with a Range request if present.

    ``checksum`` is ``(algorithm, hex digest)``, e.g. ``("sha256", "...")``.
    """
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "serbench", **({"Range": f"bytes={have}-"} if have else {})}
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part file is already complete
            return _finish(part, dest, checksum, url)
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
            try:
                for block in iter(lambda: resp.read(CHUNK), b""):
                    out.write(block)
                    done += len(block)
                    _progress(dest.name, done, total)
            except http.client.IncompleteRead as exc:  # the server closed early: keep what came
                out.write(exc.partial)
                done += len(exc.partial)
            except OSError:  # a timeout or reset mid-way: the part file is resumed next time
                pass
    if sys.stderr.isatty():
        print(file=sys.stderr)  # end the progress line
    if total and done < total:
        raise DownloadError(
            f"the download of {url} stopped at {done} of {total} bytes; run the command again "
            f"to resume it"
        )
    return _finish(part, dest, checksum, url)


def _range_start(resp: http.client.HTTPResponse) -> int | None:
    value = resp.headers.get("Content-Range", "")  # "bytes 100-999/1000"
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _total(resp: http.client.HTTPResponse, offset: int) -> int | None:
    length = resp.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _progress(name: str, done: int, total: int | None) -> None:
    if not sys.stderr.isatty():
        return
    share = f" {100 * done / total:5.1f}%" if total else ""
    print(f"\r{name}: {done / 1e6:8.1f} MB{share}", end="", file=sys.stderr, flush=True)


def _finish(part: Path, dest: Path, checksum: tuple[str, str] | None, url: str) -> Path:
    if checksum is not None:
        algorithm, expected = checksum
        got = _digest(part, algorithm)
        if got != expected.lower():
            part.unlink()
            raise DownloadError(
                f"{url}: {algorithm} {got} does not match the expected {expected}; the download "
                f"was removed, run the command again"
            )
    os.replace(part, dest)
    return dest


def unpack(archive: Path, root: Path, expected: Mapping[str, str]) -> None:
    """Unzip ``archive`` into ``root`` after checking every file listed in ``expected``.

    A bad archive is removed (the next call downloads it again) and ``root`` is left untouched.
    """
    scratch = root / ".unpack"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        _extract_checked(archive, scratch, expected)
    except DownloadError:
        shutil.rmtree(scratch, ignore_errors=True)
        archive.unlink(missing_ok=True)
        raise
    for item in sorted(scratch.iterdir()):
        target = root / item.name
        if target.is_dir() and item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
    shutil.rmtree(scratch, ignore_errors=True)


def _extract_checked(archive: Path, scratch: Path, expected: Mapping[str, str]) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                name = Path(info.filename)
                if name.is_absolute() or ".." in name.parts:
                    raise DownloadError(f"{archive}: unsafe member path {info.filename!r}")
            zf.extractall(scratch)
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{archive}: not a valid zip ({exc}); run the command again") from None
    for rel, digest in expected.items():
        path = scratch / rel
        if not path.is_file():
            raise DownloadError(f"{archive}: {rel} is missing from the archive; the archive was "
                                f"removed, run the command again")
        if _digest(path) != digest:
            raise DownloadError(f"{archive}: {rel} does not match its sha256; the archive was "
                                f"removed, run the command again")


def verified(root: Path, expected: Mapping[str, str]) -> bool:
    """Whether ``root`` already holds every expected file with the right sum."""
    return all((root / rel).is_file() and _digest(root / rel) == d for rel, d in expected.items())


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
    checksum = ("sha256", sha256) if sha256 else None
    archive = fetch(url, root / ".download.zip", checksum=checksum, by_hand=by_hand)
    unpack(archive, root, files)
    archive.unlink()
    return root


def download_ravdess(root: Path, *, url: str | None = None, md5: str = RAVDESS_MD5) -> Path:
    """Fetch ``Audio_Speech_Actors_01-24.zip`` from Zenodo into ``root`` (the ``ravdess`` folder).

    ``url`` defaults to ``$SERBENCH_RAVDESS_URL``, then Zenodo record 1188976; the archive is
    checked against the md5 Zenodo publishes for it.
    """
    root = Path(root)
    url = url or os.environ.get("SERBENCH_RAVDESS_URL") or RAVDESS_URL
    if len([p for p in root.glob("Actor_*/*.wav") if not p.name.startswith("._")]) == 1440:
        return root
    by_hand = (f"without network, download {RAVDESS_URL} elsewhere and unzip it into {root} "
               f"(it must hold Actor_01/ ... Actor_24/)")
    archive = fetch(url, root / ".download.zip", checksum=("md5", md5), by_hand=by_hand)
    unpack(archive, root, {})
    archive.unlink()
    return root
