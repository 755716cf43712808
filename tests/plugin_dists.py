"""Real installed plugins for tests: a module plus a ``.dist-info`` with a ``serbench`` entry point.

``importlib.metadata`` finds distributions on ``sys.path`` (and ``PYTHONPATH`` in subprocesses), so
a folder holding both is an installed plugin in every sense the plugin manager sees.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path


def install_plugin(folder: Path, dist: str, entry: str, module: str, source: str) -> Path:
    """Write ``module.py`` and ``<dist>-1.0.dist-info`` exposing it as entry point ``entry``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(textwrap.dedent(source))
    info = folder / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[serbench]\n{entry} = {module}\n")
    return folder


def activate(folder: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Make the plugins in ``folder`` visible to this process and to CLI subprocesses."""
    monkeypatch.syspath_prepend(str(folder))
    import os

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(folder),
                                                                  os.environ.get("PYTHONPATH")])))
    for name in list(sys.modules):
        if name.startswith("serbench_test_"):
            del sys.modules[name]
