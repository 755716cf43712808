"""The bad-input catalogue: every row is one bad input to the CLI.

For each: exit code 2, exactly one line on stderr (``serbench: error: ...``) naming the culprit
(the file, the component, the key) and no traceback, and the results folder — which already holds
two finished runs — byte-for-byte unchanged. Audio and label-file rows use a small manifest corpus
made of real EmoDB recordings (three speakers, six utterances each) plus the one bad file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf
from plugin_dists import activate, install_plugin
from scale_helpers import SWEEP, digest_tree, fill_fbank_cache, serbench, warm_cache  # noqa: F401
from serbench_datasets.emodb import EMOTIONS

from serbench.cli import main

SPEAKERS = ("03", "08", "09")


@dataclass
class Ctx:
    """What a row may use: the real corpus, a scratch folder, the store under test."""

    data_root: Path
    tmp: Path
    results: Path
    monkeypatch: pytest.MonkeyPatch

    def run(self, *extra: str, dataset: tuple[str, ...] = ()) -> list[str]:
        """``serbench run`` of the cheapest cell, fold 0, into the store under test."""
        where = dataset or ("--data-root", str(self.data_root))
        return ["run", *SWEEP, *where, "--folds", "0", "--results", str(self.results),
                "--quiet", *extra]

    def corpus(self, rows: list[tuple[str, str, str]] = (), header: str = "path,label,speaker",
               write: Callable[[Path], None] | None = None) -> tuple[str, ...]:
        """A manifest corpus of real EmoDB files plus ``rows``; ``write(folder)`` adds files."""
        folder = self.tmp / "corpus"
        folder.mkdir()
        lines = [header]
        for spk in SPEAKERS:
            for wav in sorted((self.data_root / "emodb" / "wav").glob(f"{spk}*.wav"))[:6]:
                (folder / wav.name).symlink_to(wav)
                lines.append(f"{wav.name},{EMOTIONS[wav.name[5]]},{spk}")
        lines += [",".join(r) for r in rows]
        (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
        if write:
            write(folder)
        return ("--dataset", "manifest", "--data-root", str(folder / "manifest.csv"))


def _real_wave(ctx: Ctx) -> tuple[np.ndarray, int]:
    return sf.read(str(next((ctx.data_root / "emodb" / "wav").glob("03a01*.wav"))),
                   dtype="float32")


def _a_wav(ctx: Ctx) -> Path:
    return ctx.data_root / "emodb" / "wav" / "03a01Fa.wav"


def _nan_wav(folder: Path, ctx: Ctx) -> None:
    wave, rate = _real_wave(ctx)
    wave[1000:1010] = np.nan
    sf.write(str(folder / "03bad.wav"), wave, rate, subtype="FLOAT")


def _truncated_wav(folder: Path, ctx: Ctx) -> None:
    data = next((ctx.data_root / "emodb" / "wav").glob("03a01*.wav")).read_bytes()
    (folder / "03bad.wav").write_bytes(data[: len(data) // 2])


BAD = ("03bad.wav", "angry", "03")


def _yaml(ctx: Ctx, name: str, text: str) -> str:
    path = ctx.tmp / name
    path.write_text(text)
    return str(path)


def _budgets(ctx: Ctx, body: str) -> list[str]:
    return ctx.run("--budget", "mine", "--budgets", _yaml(ctx, "budgets.yaml", f"mine:\n{body}"))


def _suite(ctx: Ctx, extra: str) -> list[str]:
    text = ("suite: bad\ndataset: emodb\nbudget: smoke\n" + extra +
            "entries:\n  - methods: linear\n    upstreams: fbank\n")
    return ["run", "--suite", _yaml(ctx, "suite.yaml", text), "--data-root", str(ctx.data_root),
            "--results", str(ctx.results), "--quiet"]


def _plugin(ctx: Ctx, source: str) -> list[str]:
    activate(install_plugin(ctx.tmp / "plugins", "prosody-plugin", "prosody",
                            "serbench_test_prosody", source), ctx.monkeypatch)
    return ["run", "--method", "prosody_probe", "--upstream", "fbank", "--dataset", "emodb",
            "--data-root", str(ctx.data_root), "--results", str(ctx.results)]


def _stored_run(ctx: Ctx) -> Path:
    [folder] = [p for p in (ctx.results / "runs").iterdir()
                if '"fold": "03"' in (p / "run.json").read_text()]
    return folder / "run.json"


def _tamper(ctx: Ctx) -> list[str]:
    path = _stored_run(ctx)
    path.write_text(path.read_text().replace(f'"run_id": "{path.parent.name}"',
                                             '"run_id": "0000000000000000"'))
    return ctx.run()


def _damage(ctx: Ctx) -> list[str]:
    path = _stored_run(ctx)
    path.write_text(path.read_text()[:200])
    return ctx.run()


def _loud_wav(folder: Path, ctx: Ctx) -> None:
    wave, rate = _real_wave(ctx)
    sf.write(str(folder / "03bad.wav"), wave * np.float32(1e20), rate, subtype="FLOAT")


def _linked(*names: str) -> Callable[[Path], None]:
    """Extra manifest rows' audio: links to one real recording."""
    def write(folder: Path) -> None:
        for name in names:
            (folder / name).symlink_to(folder / "03a01Fa.wav")
    return write


def _manifest_bytes(ctx: Ctx, tail: bytes) -> tuple[str, ...]:
    def write(folder: Path) -> None:
        with open(folder / "manifest.csv", "ab") as f:
            f.write(tail)
    return ctx.corpus(write=write)


def _laughs(levels: int = 5) -> str:
    """A YAML 'billion laughs': each anchor holds nine aliases of the one before."""
    names = "abcdefghij"[: levels + 1]
    text = "laughs:\n  - &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for prev, name in zip(names, names[1:], strict=False):
        text += f"  - &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
    return text.replace("laughs:", "options:\n  lr:", 1).replace("\n  - ", "\n    - ")


def _raw_suite(ctx: Ctx, body: bytes) -> list[str]:
    (ctx.tmp / "suite.yaml").write_bytes(body)
    return ["run", "--suite", str(ctx.tmp / "suite.yaml"), "--data-root", str(ctx.data_root),
            "--results", str(ctx.results), "--quiet"]


def _newer_run(ctx: Ctx) -> list[str]:
    """A run folder written by a newer serbench (results schema 3) next to ours."""
    source = _stored_run(ctx).parent
    target = ctx.results / "runs" / ("e" * 16)
    shutil.copytree(source, target)
    record = (target / "run.json").read_text()
    (target / "run.json").write_text(record.replace(f'"run_id": "{source.name}"',
                                                    f'"run_id": "{target.name}"')
                                     .replace('"schema": 2', '"schema": 3'))
    return ctx.run()


# name -> (the command line, built after any setup; what the one line must contain)
CATALOGUE: dict[str, Callable[[Ctx], tuple[list[str], list[str]]]] = {
    # audio
    "corrupt audio": lambda c: (c.run(dataset=c.corpus([BAD], write=lambda f: (
        f / "03bad.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk"))),
        ["03bad.wav", "unreadable audio"]),
    "empty audio": lambda c: (c.run(dataset=c.corpus([BAD], write=lambda f: (
        f / "03bad.wav").write_bytes(b""))), ["03bad.wav", "empty file (0 bytes)"]),
    "NaN audio": lambda c: (c.run(dataset=c.corpus([BAD], write=lambda f: _nan_wav(f, c))),
                            ["03bad.wav", "contains NaN or infinite samples"]),
    "truncated audio": lambda c: (c.run(dataset=c.corpus(
        [BAD], write=lambda f: _truncated_wav(f, c))), ["03bad.wav", "truncated"]),
    "missing audio file": lambda c: (c.run(dataset=c.corpus([("03gone.wav", "sad", "03")])),
                                     ["manifest.csv", "03gone.wav", "not found"]),
    # label files
    "unknown label": lambda c: (c.run(dataset=c.corpus([("03a01Fa.wav", "furious", "03")])),
                                ["manifest.csv", "unknown label 'furious'"]),
    "label file without speakers": lambda c: (c.run(dataset=c.corpus(header="path,label,who")),
                                              ["manifest.csv", "needs a speaker"]),
    "label file not JSON": lambda c: (c.run(dataset=("--dataset", "manifest", "--data-root", _yaml(
        c, "manifest.jsonl", f'{{"path": "{_a_wav(c)}", "label": "sad", "speaker": "1"}}\n'
        '{"path": \n'))), ["manifest.jsonl:2", "not a JSON object"]),
    # names
    "unknown method": lambda c: (["run", "--method", "lineer", *SWEEP[2:], "--results",
                                  str(c.results)], ["unknown method 'lineer'", "'linear'"]),
    "unknown upstream": lambda c: (["run", "--method", "linear", "--upstream", "fbnak",
                                    *SWEEP[4:], "--results", str(c.results)],
                                   ["unknown upstream 'fbnak'", "'fbank'"]),
    "unknown dataset": lambda c: (["run", *SWEEP[:4], "--dataset", "emodbb", "--results",
                                   str(c.results)], ["unknown dataset 'emodbb'", "'emodb'"]),
    "unknown fold": lambda c: (c.run("--folds", "17x"), ["has no fold '17x'"]),
    "unknown option": lambda c: (c.run("--option", "lrr=0.1"),
                                 ["method 'linear' has no option 'lrr'"]),
    "corpus not found": lambda c: (["run", *SWEEP, "--data-root", str(c.tmp / "nowhere"),
                                    "--results", str(c.results)], ["emodb", "nowhere"]),
    "unknown device": lambda c: (c.run("--device", "tpu"), ["unknown device 'tpu'"]),
    # budgets and suites (YAML)
    "budget with an unknown key": lambda c: (_budgets(c, "  base: smoke\n  max_stepz: 3\n"),
                                             ["budgets.yaml", "unknown key 'max_stepz'"]),
    "budget with a wrong type": lambda c: (_budgets(c, "  base: smoke\n  max_steps: many\n"),
                                           ["budgets.yaml", "max_steps", "'many'"]),
    "negative budget": lambda c: (_budgets(c, "  base: smoke\n  max_device_seconds: -5\n"),
                                  ["budgets.yaml", "max_device_seconds", "-5"]),
    "budget file not YAML": lambda c: (_budgets(c, "  base: [smoke\n"),
                                       ["budgets.yaml", "not valid YAML"]),
    "suite with an unknown key": lambda c: (_suite(c, "sedes: 2\n"), ["suite.yaml", "sedes"]),
    "suite with a wrong type": lambda c: (_suite(c, "seeds: two\n"),
                                          ["suite.yaml", "seeds", "two"]),
    "zero seeds": lambda c: (c.run("--seeds", "0"), ["--seeds", "got 0"]),
    "zero workers": lambda c: (c.run("--workers", "0"), ["--workers must be at least 1, got 0"]),
    # plugins
    "plugin raising at import": lambda c: (_plugin(c, "raise RuntimeError('no libprosody.so')\n"),
                                           ["unknown method 'prosody_probe'", "'prosody'",
                                            "RuntimeError: no libprosody.so"]),
    "plugin raising at registration": lambda c: (_plugin(c, (
        "import serbench\n\n@serbench.hookimpl\ndef serbench_register_methods(register):\n"
        "    raise ValueError('prosody: bad table')\n")),
        ["unknown method 'prosody_probe'", "'prosody'", "ValueError: prosody: bad table"]),
    # the store
    "tampered run.json": lambda c: (_tamper(c), ["run.json", "does not describe run",
                                                 "tampered"]),
    "damaged run.json": lambda c: (_damage(c), ["run.json", "is not valid JSON"]),
    # numbers: finite and in range at input (issue 18)
    "seeds 1e11": lambda c: (c.run("--seeds", "1e11"), ["--seeds", "1e11", "whole number"]),
    "20,000 seeds": lambda c: (c.run("--seeds", "20000", "--dry-run"),
                               ["--seeds", "from 1 to 10,000", "got 20000"]),
    "suite seed 2^31": lambda c: (_suite(c, f"seeds: [{2**31}]\n"),
                                  ["suite.yaml", "seeds", str(2**31)]),
    "leaderboard seed -1": lambda c: (["leaderboard", "--seed", "-1", "--results",
                                       str(c.results)], ["--seed", "-1", "0 to 2147483647"]),
    "suite seed past 2^63": lambda c: (_suite(c, f"seeds: [{2**63}]\n"),
                                       ["suite.yaml", "seeds", str(2**63)]),
    "NaN batch_seconds": lambda c: (_budgets(c, "  base: smoke\n  batch_seconds: .nan\n"),
                                    ["budgets.yaml", "batch_seconds", "nan"]),
    "NaN max_device_seconds": lambda c: (_budgets(c, "  base: smoke\n  max_device_seconds: .nan\n"),
                                         ["budgets.yaml", "max_device_seconds", "nan"]),
    "negative width": lambda c: (c.run("--option", "hidden=-4"),
                                 ["method 'linear'", "hidden=-4", "from 1 to"]),
    "zero width": lambda c: (c.run("--option", "hidden=0"), ["hidden=0", "from 1 to"]),
    "width past 2^31": lambda c: (c.run("--option", "hidden=100000000000"),
                                  ["hidden=100000000000", "to 2147483647"]),
    "NaN learning rate": lambda c: (c.run("--option", "lr=nan"), ["lr=nan", "finite number"]),
    "NaN duration": lambda c: (c.run(dataset=c.corpus(
        [("03dur.wav", "angry", "03", "nan")], header="path,label,speaker,duration",
        write=_linked("03dur.wav"))), ["manifest.csv:20", "duration 'nan'", "leave it empty"]),
    "infinite duration": lambda c: (c.run(dataset=c.corpus(
        [("03dur.wav", "angry", "03", "inf")], header="path,label,speaker,duration",
        write=_linked("03dur.wav"))), ["manifest.csv:20", "duration 'inf'"]),
    "negative duration": lambda c: (c.run(dataset=c.corpus(
        [("03dur.wav", "angry", "03", "-2.5")], header="path,label,speaker,duration",
        write=_linked("03dur.wav"))), ["manifest.csv:20", "duration '-2.5'"]),
    # data
    "float audio at 1e20": lambda c: (c.run(dataset=c.corpus([BAD], write=lambda f: _loud_wav(
        f, c))), ["03bad.wav", "samples reach 1e+20", "rescale it"]),
    "speaker with two genders": lambda c: (c.run(dataset=c.corpus(
        [("03g1.wav", "angry", "03", "female"), ("03g2.wav", "sad", "03", "male")],
        header="path,label,speaker,gender", write=_linked("03g1.wav", "03g2.wav"))),
        ["manifest.csv:21", "speaker '03' is male here but female at", "one gender"]),
    "non-UTF-8 manifest": lambda c: (
        c.run(dataset=_manifest_bytes(c, b"03caf\xe9.wav,sad,03\n")),
        ["manifest.csv:20", "not UTF-8", "save the manifest as UTF-8"]),
    # YAML
    "non-UTF-8 suite": lambda c: (_raw_suite(c, b"suite: caf\xe9\ndataset: emodb\n"),
                                  ["suite.yaml", "not UTF-8"]),
    "billion laughs": lambda c: (_suite(c, _laughs()), ["suite.yaml", "aliases", "expand to more "
                                                        "than 100,000 values"]),
    "5000-deep nesting": lambda c: (_suite(c, "description: " + "[" * 5000 + "]" * 5000 + "\n"),
                                    ["suite.yaml", "nested deeper than 100 levels"]),
    "duplicate YAML key": lambda c: (_suite(c, "seeds: 1\nseeds: 2\n"),
                                     ["suite.yaml", "duplicate key 'seeds' on line 5 (first on "
                                      "line 4)"]),
    "run of a newer schema": lambda c: (_newer_run(c), ["run " + "e" * 16, "newer serbench",
                                                        "results schema 3", "upgrade"]),
    "compare runs on different test sets": lambda c: (
        ["compare", "linear/fbank", "linear/fbank[lr=0.01]", "--results", str(c.results)],
        ["cannot pair", "test sets differ", "folds only in"]),
}


@pytest.fixture(scope="module")
def golden(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder with two finished runs: linear/fbank fold 03, and lr=0.01 on fold 08."""
    root = tmp_path_factory.mktemp("golden") / "results"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SERBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "shared-fbank-cache"))
        fill_fbank_cache(data_root)
        for extra in (["--folds", "0"], ["--folds", "1", "--option", "lr=0.01"]):
            assert main(["run", *SWEEP, "--data-root", str(data_root), "--results", str(root),
                         "--quiet", *extra]) == 0
    return root


@pytest.fixture
def ctx(golden: Path, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        warm_cache: Path) -> Ctx:  # noqa: F811 - the fixture
    results = tmp_path / "results"
    shutil.copytree(golden, results)
    return Ctx(data_root, tmp_path, results, monkeypatch)


SQLITE_SCRATCH = ("serbench.db-wal", "serbench.db-shm")  # SQLite's own, made on connect


def _digest(results: Path) -> dict[str, str]:
    """The store's content, file by file (SQLite's scratch files are not content)."""
    return {k: v for k, v in digest_tree(results).items() if k not in SQLITE_SCRATCH}


def _check(code: int, err: str, culprits: list[str], results: Path,
           before: dict[str, str]) -> None:
    assert code == 2, err
    assert err.endswith("\n") and err.count("\n") == 1, err  # exactly one line
    assert err.startswith("serbench: error: ") and "Traceback" not in err
    for culprit in culprits:
        assert culprit in err, f"{culprit!r} not named in: {err}"
    assert _digest(results) == before


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_bad_input_is_one_line_naming_the_culprit_and_changes_nothing(
        name: str, ctx: Ctx, capsys: pytest.CaptureFixture[str]) -> None:
    argv, culprits = CATALOGUE[name](ctx)
    before = _digest(ctx.results)
    capsys.readouterr()
    code = main(argv)
    _check(code, capsys.readouterr().err, culprits, ctx.results, before)


def test_catalogue_size() -> None:
    assert len(CATALOGUE) + 2 >= 50  # + the read-only and full-disk rows below


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def mounted(tmp_path: Path) -> Callable[..., Path]:
    """Real mounts (root only): a read-only bind mount, or a tiny tmpfs that fills up."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a read-only or a full filesystem")
    points: list[Path] = []

    def make(*args: str) -> Path:
        point = tmp_path / f"mnt{len(points)}"
        point.mkdir()
        _mount(*args, str(point))
        points.append(point)
        return point

    yield make
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_read_only_results_folder(ctx: Ctx, mounted: Callable[..., Path],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    point = mounted("--bind", str(ctx.results))
    _mount("-o", "remount,bind,ro", str(point))
    before = _digest(point)
    capsys.readouterr()
    code = main(["run", *SWEEP, "--data-root", str(ctx.data_root), "--folds", "2",
                 "--results", str(point), "--quiet"])
    _check(code, capsys.readouterr().err, [str(point), "not writable", "--results"], point,
           before)


def _full(point: Path, ctx: Ctx, headroom_kib: int) -> Path:
    """The store copied onto a 1 MiB tmpfs filled up to ``headroom_kib``."""
    results = point / "results"
    shutil.copytree(ctx.results, results, symlinks=True)
    (point / "filler").write_bytes(b"\0" * (shutil.disk_usage(point).free - headroom_kib * 1024))
    return results


def test_full_disk(ctx: Ctx, mounted: Callable[..., Path]) -> None:
    results = _full(mounted("-t", "tmpfs", "-o", "size=1m", "tmpfs"), ctx, headroom_kib=12)
    before = _digest(results)
    # a subprocess: SQLite maps files, and a full tmpfs must not take pytest down with it
    done = serbench("run", *SWEEP, "--data-root", str(ctx.data_root), "--folds", "2",
                    "--results", str(results), "--quiet")
    _check(done.returncode, done.stderr, ["cannot write the results index",
                                          str(results / "serbench.db"), "KiB free",
                                          "free some space"], results, before)


def test_a_disk_filling_up_at_the_index_keeps_the_run_whole(ctx: Ctx,
                                                            mounted: Callable[..., Path]) -> None:
    point = mounted("-t", "tmpfs", "-o", "size=1m", "tmpfs")
    results = _full(point, ctx, headroom_kib=44)  # room for the run folder, not for SQLite
    args = ["run", *SWEEP, "--data-root", str(ctx.data_root), "--folds", "2", "--results",
            str(results), "--quiet"]
    done = serbench(*args)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "is stored whole in" in done.stderr and "the next serbench run indexes it" in done.stderr
    (point / "filler").unlink()
    again = serbench(*args)
    assert again.returncode == 0, again.stderr
    from serbench.store import Store

    rows = Store(results).query()
    assert sorted(r["fold"] for r in rows) == ["03", "08", "09"]  # indexed, not run again


def test_stereo_and_8khz_audio_are_converted_not_rejected(ctx: Ctx) -> None:
    """Not errors by design: stereo is mixed to mono and 8 kHz resampled to the upstream's rate."""
    def write(folder: Path) -> None:
        wave, rate = _real_wave(ctx)
        sf.write(str(folder / "03stereo.wav"), np.stack([wave, wave * 0.5], axis=1), rate)
        sf.write(str(folder / "03narrow.wav"), wave[::2], rate // 2)

    extra = [("03stereo.wav", "happy", "03"), ("03narrow.wav", "happy", "03")]
    assert main(ctx.run(dataset=ctx.corpus(extra, write=write))) == 0
    from serbench.store import Store

    [row] = Store(ctx.results).query(dataset="manifest")
    record = Store(ctx.results).read_record(row["run_id"])
    assert record["n_test"] == 6 + 2 and record["skipped_audio"] == []
    keys = {p["key"] for p in Store(ctx.results).read_predictions(row["run_id"])}
    assert {"03stereo.wav", "03narrow.wav"} <= keys


def test_relabelled_data_is_a_new_run_and_is_never_paired_with_the_old(
        ctx: Ctx, capsys: pytest.CaptureFixture[str]) -> None:
    """The run id and the pairing check cover what a run saw, not only the test set: here the
    training labels change and the test utterances and their labels stay the same."""
    import json

    from serbench.store import Store

    dataset = ctx.corpus()
    assert main(ctx.run(dataset=dataset)) == 0
    manifest = Path(dataset[-1])
    lines = manifest.read_text().splitlines()
    test, train = lines[1:7], [line.split(",") for line in lines[7:]]  # fold 0 tests speaker 03
    labels = [r[1] for r in train]
    relabelled = [f"{path},{label},{spk}"  # each training row takes the next one's label
                  for (path, _, spk), label in zip(train, labels[1:] + labels[:1], strict=True)]
    manifest.write_text("\n".join([lines[0], *test, *relabelled]) + "\n")
    assert sum(a != b for a, b in zip(lines[7:], relabelled, strict=True)) >= 8
    assert main(ctx.run("--option", "lr=0.01", dataset=dataset)) == 0
    capsys.readouterr()
    code = main(["compare", "linear/fbank", "linear[lr=0.01]/fbank", "--dataset", "manifest",
                 "--results", str(ctx.results)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("serbench: error: cannot pair linear/fbank with linear[lr=0.01]/fbank "
                          "on manifest: their test sets differ (fold 03: ") and "(data " in err
    assert main(ctx.run("--json", dataset=dataset)) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "ok"  # not "skipped": a new run
    rows = Store(ctx.results).query(dataset="manifest")
    assert len(rows) == 3 and len({r["data_hash"] for r in rows}) == 2


def test_float_audio_at_1e20_is_skipped_with_skip_bad_audio(ctx: Ctx) -> None:
    from serbench.store import Store

    dataset = ctx.corpus([BAD], write=lambda f: _loud_wav(f, ctx))
    assert main(ctx.run("--skip-bad-audio", dataset=dataset)) == 0
    [row] = Store(ctx.results).query(dataset="manifest")
    record = Store(ctx.results).read_record(row["run_id"])
    [skipped] = record["skipped_audio"]
    assert skipped["path"].endswith("03bad.wav") and record["n_test"] == 6
    assert skipped["reason"].startswith("samples reach 1e+20, far outside [-1, 1]")
