"""Manifest caching, data roots (argument, site hook, $SERBENCH_DATA) and dataset options."""

from __future__ import annotations

import os
import shutil
import types
from dataclasses import replace
from pathlib import Path

import pytest

from serbench.data.audio import AudioError
from serbench.data.manifests import cache_dir, dataset_options, load_utterances, resolve_root
from serbench.hookspecs import hookimpl
from serbench.plugins import make_manager
from serbench.registry import collect
from serbench.specs import ConfigError

FILES = ("03a01Fa.wav", "03a01Nc.wav", "08a01Ab.wav")


@pytest.fixture()
def small(emodb_root: Path, tmp_path: Path) -> Path:
    """Three real EmoDB files in the official layout."""
    root = tmp_path / "emodb"
    (root / "wav").mkdir(parents=True)
    for name in FILES:
        shutil.copy2(emodb_root / "wav" / name, root / "wav" / name)
    return root


@pytest.fixture()
def counted():
    """The real EmoDB spec, its loader wrapped to count how often the corpus is parsed."""
    spec = collect().datasets.get("emodb")
    calls: list[Path] = []

    def load(root, options):
        calls.append(root)
        return spec.load_manifest(root, options)

    return replace(spec, load_manifest=load), calls


def test_parsed_once_then_reparsed_when_the_corpus_changes(counted, small: Path) -> None:
    spec, calls = counted
    first = load_utterances(spec, small, {})
    assert [u.key for u in first] == ["03a01Fa", "03a01Nc", "08a01Ab"]
    assert load_utterances(spec, small, {}) == first and len(calls) == 1
    assert [p.name for p in (cache_dir() / "manifests").iterdir()] != []
    os.utime(small / "wav" / FILES[0], ns=(1, 1))  # same size, new mtime
    assert load_utterances(spec, small, {}) == first and len(calls) == 2
    (small / "wav" / FILES[2]).unlink()
    assert [u.key for u in load_utterances(spec, small, {})] == ["03a01Fa", "03a01Nc"]
    assert len(calls) == 3
    german = load_utterances(spec, small, {"text_language": "de"})  # options key the cache
    assert german[0].text == "Der Lappen liegt auf dem Eisschrank." and len(calls) == 4
    assert load_utterances(spec, small, {})[0].text.startswith("The tablecloth")
    assert len(calls) == 4


def test_unreadable_audio_raises_or_is_handed_to_the_runner(counted, small: Path) -> None:
    spec, calls = counted
    bad = small / "wav" / "09a01Wa.wav"
    bad.write_bytes(b"")
    with pytest.raises(AudioError) as err:
        load_utterances(spec, small, {})
    assert str(err.value) == f"{bad}: empty file (0 bytes)" and err.value.path == str(bad)
    for _ in range(2):  # the second answer comes from the cache and says the same
        skipped: list[AudioError] = []
        kept = load_utterances(spec, small, {}, on_bad_audio=skipped.append)
        assert [u.key for u in kept] == ["03a01Fa", "03a01Nc", "08a01Ab"]
        assert [e.path for e in skipped] == [str(bad)]
    assert len(calls) == 1  # parsed once: the bad file is part of the cached answer


def test_roots_from_the_argument_the_site_hook_and_the_environment(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = collect().datasets.get("emodb")
    assert resolve_root(spec, data_root, None) == data_root / "emodb"
    assert resolve_root(spec, data_root / "emodb", None) == data_root / "emodb"
    site = types.ModuleType("site_roots")

    @hookimpl
    def serbench_dataset_root(dataset: str):
        return str(data_root / "emodb") if dataset == "emodb" else None

    site.serbench_dataset_root = serbench_dataset_root
    plugins = make_manager(entry_points=False, extra=[("site", site)])
    assert resolve_root(spec, None, plugins) == data_root / "emodb"
    with pytest.raises(ConfigError) as err:
        resolve_root(spec, None, None)
    assert str(err.value) == (
        "no data root for dataset 'emodb': pass --data-root DIR or set SERBENCH_DATA; run "
        "`serbench data download emodb --data-root <DIR>` or put the files in <DIR>/emodb by "
        "hand (the Emo-DB download.zip unpacked, with its wav/ folder)"
    )
    monkeypatch.setenv("SERBENCH_DATA", str(data_root))
    assert resolve_root(spec, None, None) == data_root / "emodb"
    iemocap = collect().datasets.get("iemocap")
    with pytest.raises(ConfigError) as err:
        resolve_root(iemocap, tmp_path / "corpora", None)
    assert str(err.value) == (
        f"dataset 'iemocap' not found at {tmp_path / 'corpora'} (from --data-root); IEMOCAP is "
        "licensed: request it from USC SAIL at https://sail.usc.edu/iemocap/ and pass "
        "--data-root pointing at IEMOCAP_full_release/ or the folder holding it"
    )


def test_options_are_typed_and_checked() -> None:
    spec = collect().datasets.get("iemocap")
    assert dataset_options(spec, {}) == {"label_set": "4class", "improvised": False}
    assert dataset_options(spec, ["improvised=yes", "label_set=full"]) == {
        "label_set": "full", "improvised": True}
    with pytest.raises(ConfigError) as err:
        dataset_options(spec, ["improvized=1"])
    assert str(err.value) == "dataset 'iemocap' has no option 'improvized'; did you mean " \
                             "'improvised'?"
    with pytest.raises(ConfigError) as err:
        dataset_options(spec, {"improvised": "maybe"})
    assert str(err.value) == ("dataset 'iemocap' option improvised='maybe': expected a bool "
                              "like False")
    with pytest.raises(ConfigError, match="is not KEY=VALUE"):
        dataset_options(spec, ["improvised"])
