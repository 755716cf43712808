"""Plugin loading: broken plugins are reported, duplicates abort, unknown names get a hint."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from plugin_dists import activate, install_plugin

from serbench.plugins import make_manager
from serbench.registry import DuplicateName, UnknownName, collect

BROKEN_IMPORT = "raise RuntimeError('cannot find libfoo.so')\n"

RAISING_HOOK = """
from serbench import hookimpl

@hookimpl
def serbench_register_methods(register):
    raise ValueError('bad configuration in the plugin')
"""

DUPLICATE = """
from serbench import UpstreamSpec, hookimpl

@hookimpl
def serbench_register_upstreams(register):
    register(UpstreamSpec(name="fbank", loader=lambda device: None, description="a clash"))
"""

MISSPELT = """
from serbench import hookimpl

@hookimpl
def serbench_register_upstream(register):
    pass
"""

RETURNING = """
from serbench import MethodSpec, hookimpl

@hookimpl
def serbench_register_methods(register):
    return [MethodSpec(name="returned_probe", build=lambda ctx: None)]
"""

THEIRS = """
from serbench import DatasetSpec, hookimpl

@hookimpl
def serbench_register_datasets(register):
    register(DatasetSpec(name="theirs", labels=("a",), protocols={"p": ""},
                         load_manifest=lambda root, options: [],
                         folds=lambda utts, protocol, options: []))
"""

OBSERVER = """
from serbench import hookimpl

@hookimpl
def serbench_run_finished(result):
    raise RuntimeError("tracker down for " + result["run_id"])
"""


def serbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "serbench.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_first_party_plugins_come_through_entry_points() -> None:
    comps = collect()
    assert comps.plugins.infos["baselines"].distribution == "serbench"
    assert comps.methods.origin["linear"] == "baselines"
    assert comps.upstreams.origin["fbank"] == "upstreams"
    assert comps.datasets.origin["emodb"] == "datasets"
    assert comps.plugins.failed() == {}


def test_a_plugin_that_fails_to_import_is_reported_and_the_rest_load(tmp_path, monkeypatch):
    activate(install_plugin(tmp_path, "broken-plugin", "broken", "serbench_test_broken",
                            BROKEN_IMPORT), monkeypatch)
    comps = collect()
    assert "cannot find libfoo.so" in comps.plugins.infos["broken"].error
    assert "linear" in comps.methods  # the others still load
    out = serbench("plugins", "--json")
    assert out.returncode == 0
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["broken"]["status"] == "error"
    assert "RuntimeError: cannot find libfoo.so" in rows["broken"]["error"]
    assert rows["baselines"]["status"] == "ok"


def test_a_hook_that_raises_is_reported_against_its_plugin(tmp_path, monkeypatch):
    activate(install_plugin(tmp_path, "raising-plugin", "raising", "serbench_test_raising",
                            RAISING_HOOK), monkeypatch)
    comps = collect()
    assert comps.plugins.infos["raising"].error == (
        "serbench_register_methods raised ValueError: bad configuration in the plugin")
    assert "linear" in comps.methods
    out = serbench("run", "--method", "nosuch", "--upstream", "fbank", "--dataset", "emodb")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "unknown method 'nosuch'" in out.stderr
    assert "'raising'" in out.stderr  # the broken plugin is named as a possible provider


def test_a_duplicate_name_is_refused_where_used_and_both_are_shown(tmp_path, monkeypatch):
    activate(install_plugin(tmp_path, "dup-plugin", "dup", "serbench_test_dup", DUPLICATE),
             monkeypatch)
    comps = collect()
    with pytest.raises(DuplicateName, match=r"upstream 'fbank' is registered twice: by plugin "
                                            r"'dup' and by plugin 'upstreams'"):
        comps.upstreams.get("fbank")
    assert comps.upstreams.get("egemaps").name == "egemaps"  # other names still resolve
    listed = serbench("list", "upstreams", "--json")  # a command that does not use the name runs
    assert listed.returncode == 0, listed.stderr
    origins = [r["plugin"] for r in json.loads(listed.stdout) if r["name"] == "fbank"]
    assert origins == ["dup", "upstreams"]
    shown = serbench("plugins")
    assert shown.returncode == 0
    assert ("clash: upstream 'fbank' is registered by 'dup' and 'upstreams'; commands that use "
            "this name refuse it") in " ".join(shown.stdout.split())
    used = serbench("validate", "upstream", "fbank")
    assert used.returncode == 2
    assert used.stderr == ("serbench: error: upstream 'fbank' is registered twice: by plugin "
                           "'dup' and by plugin 'upstreams'; uninstall one of them "
                           "(`serbench plugins` lists both)\n")


def test_a_misspelt_hook_leaves_out_that_plugin_only(tmp_path, monkeypatch):
    activate(install_plugin(tmp_path, "typo-plugin", "typo", "serbench_test_typo", MISSPELT),
             monkeypatch)
    plugins = make_manager()
    assert plugins.infos["typo"].error == ("unknown hook serbench_register_upstream: did you "
                                           "mean serbench_register_upstreams?")
    assert plugins.pm.get_plugin("typo") is None
    monkeypatch.setenv("COLUMNS", "120")
    out = serbench("plugins")
    assert out.returncode == 0, out.stderr
    shown = " ".join(out.stdout.split())  # the error column wraps to the terminal width
    assert ("typo typo-plugin 1.0 error unknown hook serbench_register_upstream: did you mean "
            "serbench_register_upstreams?") in shown
    listed = serbench("list", "budgets")
    assert listed.returncode == 0
    assert listed.stderr == ("serbench: warning: left out plugin typo (typo-plugin) (run "
                             "`serbench plugins` to see why)\n")


def test_a_hook_returning_specs_is_told_to_call_register(tmp_path, monkeypatch):
    activate(install_plugin(tmp_path, "ret-plugin", "ret", "serbench_test_ret", RETURNING),
             monkeypatch)
    comps = collect()
    assert comps.plugins.infos["ret"].error == ("serbench_register_methods returned a value; "
                                                "call register(spec) instead")
    assert "returned_probe" not in comps.methods


def test_an_entry_point_named_like_a_builtin_replaces_nothing(tmp_path, monkeypatch):
    activate(install_plugin(tmp_path, "serbench-theirs", "datasets", "serbench_test_theirs",
                            THEIRS), monkeypatch)
    comps = collect()
    assert comps.datasets.origin["emodb"] == "datasets"
    assert "theirs" not in comps.datasets
    assert comps.plugins.infos["datasets"].distribution == "serbench"
    assert comps.plugins.infos["datasets@serbench-theirs"].error == (
        "entry-point name 'datasets' of serbench-theirs 1.0 is already taken by serbench 0.1.0; "
        "nothing is replaced: rename it under [project.entry-points.serbench]")
    out = serbench("plugins", "--json")
    assert out.returncode == 0
    rows = [(r["name"], r["distribution"], r["status"]) for r in json.loads(out.stdout)
            if r["name"] == "datasets"]
    assert rows == [("datasets", "serbench", "ok"), ("datasets", "serbench-theirs", "error")]


def test_a_failing_run_observer_is_named(tmp_path, monkeypatch, capsys):
    from serbench.plugins import notify_run_finished

    activate(install_plugin(tmp_path, "obs-plugin", "observer", "serbench_test_obs", OBSERVER),
             monkeypatch)
    notify_run_finished(make_manager(), {"run_id": "abc"})
    assert capsys.readouterr().err == (
        "serbench: warning: plugin 'observer': serbench_run_finished raised "
        "RuntimeError: tracker down for abc; the run is stored\n")


def test_unknown_names_get_did_you_mean() -> None:
    comps = collect()
    with pytest.raises(UnknownName, match=r"unknown method 'lineer': did you mean 'linear'\?"):
        comps.methods.get("lineer")
    with pytest.raises(UnknownName, match=r"unknown dataset 'emodbb': did you mean 'emodb'"):
        comps.datasets.get("emodbb")


@pytest.mark.parametrize("argv", [["plugins", "--json"], ["list", "upstreams", "--json"],
                                  ["list", "methods", "--json"], ["list", "datasets", "--json"],
                                  ["list", "budgets", "--json"]])
def test_listing_imports_neither_torch_nor_transformers(argv: list[str]) -> None:
    code = (
        "import sys, io, contextlib\n"
        "from serbench.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        f"    rc = main({argv!r})\n"
        "assert rc == 0, rc\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers'))\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_list_methods_json_shows_origin_description_and_options() -> None:
    out = serbench("list", "methods", "--json")
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["linear"]["plugin"] == "baselines"
    assert rows["linear"]["description"]
    assert rows["linear"]["options"]["normalize"] == "global"


@pytest.mark.parametrize("argv", [["plugins"], ["plugins", "-v"], ["list", "methods"],
                                  ["list", "upstreams"], ["list", "datasets"]])
def test_listings_fit_the_terminal_width(argv: list[str], monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    out = serbench(*argv)
    assert out.returncode == 0, out.stderr
    widest = max(out.stdout.splitlines(), key=len)
    assert len(widest) <= 100, widest


def test_list_methods_shows_every_option_with_its_default(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    out = serbench("list", "methods")
    text = " ".join(out.stdout.split())
    assert "method plugin options (defaults) description" in text
    for option in ("k_values=50,100,200", "cluster_frames=50000", "lr=0.01", "temperature=10.0",
                   "alpha_e=0.8", "prompt='The speaker feels {adjective}.'"):
        assert option in text
    verbose = " ".join(serbench("plugins", "-v").stdout.split())
    assert "22 upstreams: fbank, egemaps," in verbose
    assert " ".join(serbench("plugins").stdout.split()).count("22 upstreams") == 1
