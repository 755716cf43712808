"""``serbench data stats|download`` as a user runs them."""

from __future__ import annotations

import functools
import json
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from serbench.cli import main


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_stats_json_on_the_real_emodb(capsys, data_root: Path) -> None:
    code, out, _ = run(capsys, "data", "stats", "emodb", "--data-root", str(data_root), "--json")
    assert code == 0
    stats = json.loads(out)
    assert list(stats) == ["dataset", "utterances", "labels", "speakers", "genders", "sessions",
                           "hours", "folds"]
    assert stats["dataset"] == "emodb" and stats["utterances"] == 535
    assert stats["labels"] == {"angry": 127, "bored": 81, "disgusted": 46, "fearful": 69,
                               "happy": 71, "neutral": 79, "sad": 62}
    assert stats["speakers"] == {"03": 49, "08": 58, "09": 43, "10": 38, "11": 55, "12": 35,
                                 "13": 61, "14": 69, "15": 56, "16": 71}
    assert stats["genders"] == {"female": 302, "male": 233}
    assert stats["sessions"] == {}
    assert stats["hours"] == pytest.approx(1487.09 / 3600, abs=1e-4)
    assert len(stats["folds"]) == 10
    assert stats["folds"][0] == {"fold": "03", "train": 428, "dev": 58, "test": 49}
    assert all(f["train"] + f["dev"] + f["test"] == 535 for f in stats["folds"])


def test_stats_text_and_one_line_errors(capsys, data_root: Path) -> None:
    code, out, _ = run(capsys, "data", "stats", "emodb", "--data-root", str(data_root))
    assert code == 0
    assert out.splitlines()[:3] == [
        f"emodb at {data_root / 'emodb'} (protocol loso)",
        "utterances 535, speakers 10, hours 0.413",
        "labels: angry 127, bored 81, disgusted 46, fearful 69, happy 71, neutral 79, sad 62",
    ]
    code, out, err = run(capsys, "data", "stats", "emodb", "--data-root", str(data_root),
                         "--protocol", "lsoo")
    assert (code, out) == (2, "")
    assert err == "serbench: error: dataset 'emodb' has no protocol 'lsoo'; did you mean 'loso'?\n"
    code, _, err = run(capsys, "data", "download", "iemocap", "--data-root", "/nonexistent")
    assert code == 2 and err.startswith("serbench: error: iemocap cannot be downloaded by "
                                        "serbench: IEMOCAP is licensed: request it from USC SAIL")


def test_stats_names_a_truncated_wav(capsys, emodb_root: Path, tmp_path: Path) -> None:
    wav = tmp_path / "emodb" / "wav"
    wav.mkdir(parents=True)
    good = (emodb_root / "wav" / "03a01Fa.wav").read_bytes()
    (wav / "03a01Fa.wav").write_bytes(good)
    (wav / "03a01Nc.wav").write_bytes(good[:5000])
    code, out, err = run(capsys, "data", "stats", "emodb", "--data-root", str(tmp_path))
    assert (code, out) == (2, "")
    assert err == (f"serbench: error: {wav / '03a01Nc.wav'}: truncated: the header announces "
                   f"{len(good) - 44} bytes of audio but the file holds 4956; copy or download "
                   f"it again\n")


def test_download_the_real_archive_from_a_local_mirror(
    capsys, emodb_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The official layout zipped from the reference copy, served over HTTP on loopback,
    verified against the checksums shipped with the plugin, and listed afterwards."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with zipfile.ZipFile(mirror / "download.zip", "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(emodb_root.rglob("*")):
            zf.write(path, path.relative_to(emodb_root).as_posix())
    handler = functools.partial(QuietFiles, directory=str(mirror))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        monkeypatch.setenv("SERBENCH_EMODB_URL",
                           f"http://127.0.0.1:{httpd.server_address[1]}/download.zip")
        target = tmp_path / "corpora"
        code, out, err = run(capsys, "data", "download", "emodb", "--data-root", str(target))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert (code, err) == (0, "")
    assert out == f"emodb: 535 utterances in {target / 'emodb'}\n"
    assert len(list((target / "emodb" / "wav").glob("*.wav"))) == 535
    assert sorted(p.name for p in (target / "emodb").iterdir()) == [
        "erkennung.txt", "erklaerung.txt", "lablaut", "labsilb", "silb", "wav"]
