"""Without s3prl installed, ``s3prl:`` names fail with one line saying how to install it."""

from __future__ import annotations

import importlib

import pytest

from serbench.cli import main


def _has_s3prl() -> bool:
    """The real package (tests/s3prl would pass as a namespace package named s3prl)."""
    try:
        importlib.import_module("s3prl.nn")
    except ImportError:
        return False
    return True


@pytest.mark.skipif(_has_s3prl(),
                    reason="s3prl is installed here; tests/s3prl covers the real path")
def test_missing_s3prl_says_how_to_install_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "upstream", "s3prl:hubert_base"]) == 2
    assert capsys.readouterr().err.strip() == (
        "serbench: error: s3prl upstreams need s3prl 0.4.18, which is not installed here: "
        "pip install 'serbench[s3prl]'"
    )


def test_s3prl_prefix_alone_asks_for_an_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "upstream", "s3prl:"]) == 2
    assert "needs an entry name: s3prl:<name> or s3prl:<name>@<path>" in capsys.readouterr().err
