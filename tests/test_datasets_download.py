"""Downloads against a real HTTP server on loopback: resume, checksums, unpacking, offline."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
from serbench_datasets.download import DownloadError, download_emodb, download_ravdess, fetch


class Archive(BaseHTTPRequestHandler):
    """Serves ``payload`` with HTTP Range support; ``cut`` bytes into a full reply it hangs up."""

    payload = b""
    cut: int | None = None
    ranges: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).ranges.append(self.headers.get("Range"))
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range",
                             f"bytes {start}-{len(self.payload) - 1}/{len(self.payload)}")
        else:
            self.send_response(200)
        body = self.payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if start == 0 and type(self).cut is not None:
            self.wfile.write(body[: type(self).cut])
            type(self).cut = None
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def make_zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


FILES = {"wav/03a01Fa.wav": b"RIFF" + bytes(range(256)) * 64, "erkennung.txt": b"Nr.\tSatz\n"}
SUMS = {name: hashlib.sha256(data).hexdigest() for name, data in FILES.items()}


@pytest.fixture()
def server() -> Iterator[str]:
    Archive.payload, Archive.cut, Archive.ranges = make_zip(FILES), None, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Archive)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/download.zip"
    httpd.shutdown()
    httpd.server_close()


def test_interrupted_download_resumes_with_a_range_request(server: str, tmp_path: Path) -> None:
    Archive.cut = 1000
    sha = hashlib.sha256(Archive.payload).hexdigest()
    dest = tmp_path / "a.zip"
    with pytest.raises(DownloadError) as err:
        fetch(server, dest, checksum=("sha256", sha))
    total = len(Archive.payload)
    assert str(err.value) == (f"the download of {server} stopped at 1000 of {total} bytes; run "
                              f"the command again to resume it")
    assert (tmp_path / "a.zip.part").stat().st_size == 1000
    fetch(server, dest, checksum=("sha256", sha))
    assert Archive.ranges == [None, "bytes=1000-"]
    assert dest.read_bytes() == Archive.payload
    assert not (tmp_path / "a.zip.part").exists()


def test_download_emodb_unpacks_verified_files_in_place(server: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERBENCH_EMODB_URL", server)
    root = tmp_path / "emodb"
    download_emodb(root, files=SUMS)
    assert (root / "wav" / "03a01Fa.wav").read_bytes() == FILES["wav/03a01Fa.wav"]
    assert sorted(p.name for p in root.iterdir()) == ["erkennung.txt", "wav"]  # no leftovers
    download_emodb(root, files=SUMS)  # already verified: nothing fetched again
    assert Archive.ranges == [None]


def test_archive_checksum_mismatch_removes_the_download(server: str, tmp_path: Path) -> None:
    root = tmp_path / "emodb"
    with pytest.raises(DownloadError) as err:
        download_emodb(root, url=server, sha256="0" * 64, files=SUMS)
    got = hashlib.sha256(Archive.payload).hexdigest()
    assert str(err.value) == (f"{server}: sha256 {got} does not match the expected {'0' * 64}; "
                              f"the download was removed, run the command again")
    assert list(root.iterdir()) == []


def test_a_file_that_fails_its_sum_leaves_the_corpus_untouched(server: str,
                                                               tmp_path: Path) -> None:
    root = tmp_path / "emodb"
    (root / "wav").mkdir(parents=True)
    (root / "wav" / "mine.wav").write_bytes(b"kept")
    wrong = {**SUMS, "wav/03a01Fa.wav": "f" * 64}
    with pytest.raises(DownloadError) as err:
        download_emodb(root, url=server, files=wrong)
    assert str(err.value) == (f"{root / '.download.zip'}: wav/03a01Fa.wav does not match its "
                              f"sha256; the archive was removed, run the command again")
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == ["wav", "wav/mine.wav"]


def test_offline_fails_at_once_saying_what_to_do(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/download.zip"
    with pytest.raises(DownloadError) as err:
        download_emodb(tmp_path / "emodb", url=url)
    assert str(err.value) == (
        f"cannot reach {url} ([Errno 111] Connection refused); without network, download "
        f"http://emodb.bilderbar.info/download/download.zip elsewhere and unzip it into "
        f"{tmp_path / 'emodb'} (it must hold wav/ with 535 files)"
    )


def test_ravdess_archive_is_checked_against_its_md5(server: str, tmp_path: Path) -> None:
    Archive.payload = make_zip({"Actor_01/03-01-01-01-01-01-01.wav": b"RIFF0000",
                                "Actor_02/03-01-02-01-01-01-02.wav": b"RIFF1111"})
    md5 = hashlib.md5(Archive.payload).hexdigest()
    root = tmp_path / "ravdess"
    with pytest.raises(DownloadError, match=r"md5 [0-9a-f]{32} does not match the expected 0+;"):
        download_ravdess(root, url=server, md5="0" * 32)
    download_ravdess(root, url=server, md5=md5)
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*.wav")) == [
        "Actor_01/03-01-01-01-01-01-01.wav", "Actor_02/03-01-02-01-01-01-02.wav"]
