"""Plugin loading: broken plugins are reported, duplicates abort, unknown names get a hint."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from plugin_dists import activate, install_plugin

from serbench.plugins import PluginLoadError, make_manager
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


def test_a_duplicate_name_aborts_naming_both_plugins(tmp_path, monkeypatch):
    activate(install_plugin(tmp_path, "dup-plugin", "dup", "serbench_test_dup", DUPLICATE),
             monkeypatch)
    with pytest.raises(DuplicateName, match=r"upstream 'fbank' is registered twice: by plugin "
                                            r"'(dup|upstreams)' and by plugin '(dup|upstreams)'"):
        collect()
    out = serbench("list", "upstreams")
    assert out.returncode == 2
    assert out.stderr.startswith("serbench: error: upstream 'fbank' is registered twice")


def test_a_misspelt_hook_name_fails_loudly(tmp_path, monkeypatch):
    activate(install_plugin(tmp_path, "typo-plugin", "typo", "serbench_test_typo", MISSPELT),
             monkeypatch)
    with pytest.raises(PluginLoadError, match="serbench_register_upstream"):
        make_manager()
    out = serbench("plugins")
    assert out.returncode == 2
    assert "plugin 'typo'" in out.stderr and "serbench_register_upstream" in out.stderr


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
