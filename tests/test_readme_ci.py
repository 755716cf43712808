"""CI runs the README's install and test commands exactly as written, so a fresh clone that
follows the README passes the suite: nothing CI installs is missing from the README."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> tuple[str, str]:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    install = next(b for b in blocks if b.startswith("# install"))
    tests = next(b for b in blocks if b.startswith("# the test command"))
    return install.splitlines()[1], tests.splitlines()[1]


def test_ci_runs_the_readme_commands_verbatim() -> None:
    out = subprocess.run(["bash", str(REPO / ".ci" / "run"), "--print"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert tuple(out.stdout.splitlines()) == readme_commands()
    script = (REPO / ".ci" / "run").read_text()
    assert "pip install" not in script  # every install is the README's


def test_the_readme_install_command_installs_every_tested_package() -> None:
    install, tests = readme_commands()
    assert tests == "python -m pytest -n 2"
    assert "pip install torch==2.13.0" in install and '-e ".[test]"' in install
    for project in sorted((REPO / "examples").glob("*/pyproject.toml")):
        # pytest's testpaths include the examples' tests, which import them installed
        assert f"-e examples/{project.parent.name}" in install
