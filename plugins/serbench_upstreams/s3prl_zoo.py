"""s3prl's upstream zoo as serbench upstreams: ``s3prl:<name>`` and ``s3prl:<name>@<path>``.

``s3prl:hubert_base`` loads a named entry (s3prl downloads it from its fixed address);
``s3prl:hf_hubert_custom@/path/to/folder`` passes a local checkpoint (a folder or a file) to the
``*_custom`` / ``*_local`` entries, which is how they work offline. s3prl is an optional
dependency (``pip install 'serbench[s3prl]'``), imported only when such a name is used.

The spec needs the layer count and width, which s3prl only knows once the model is built, so
resolving the name builds it once (kept for the loader). s3prl pads a batch its own way, and many
of its models normalise over time in their first convolution, so padding would change the valid
frames: utterances of different lengths run one at a time, equal lengths as one batch.
"""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path
from typing import Any

from serbench import ConfigError, UpstreamSpec

from .hub import folder_revision

INSTALL = "pip install 'serbench[s3prl]'"
_BUILT: dict[tuple[str, str | None], Any] = {}


def _s3prl() -> Any:
    try:
        import s3prl.nn
    except ImportError:
        raise ConfigError(f"s3prl upstreams need s3prl 0.4.18, which is not installed here: "
                          f"{INSTALL}") from None
    return s3prl


def parse(rest: str) -> tuple[str, str | None]:
    """``name`` or ``name@path`` -> (entry name, local checkpoint or None)."""
    name, _, path = rest.partition("@")
    if not name:
        raise ConfigError("'s3prl:' needs an entry name: s3prl:<name> or s3prl:<name>@<path>")
    return name, (str(Path(path).expanduser()) if path else None)


def build(name: str, path: str | None) -> Any:
    """The ``S3PRLUpstream`` for an entry, built once per (name, path)."""
    key = (name, path)
    if key in _BUILT:
        return _BUILT[key]
    s3prl = _s3prl()
    known = s3prl.nn.S3PRLUpstream.available_names()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"did you mean {' or '.join(close)}?" if close else "see s3prl's hub for the names"
        raise ConfigError(f"s3prl has no upstream {name!r}: {hint}")
    needs_path = name.endswith(("_local", "_custom", "_url", "_gdriveid"))
    if needs_path and path is None:
        raise ConfigError(f"s3prl upstream {name!r} needs a checkpoint: s3prl:{name}@<path or url>")
    if path is not None and not needs_path:
        raise ConfigError(f"s3prl upstream {name!r} downloads a fixed checkpoint and ignores a "
                          f"path; use its *_local or *_custom variant for {path}")
    if path is not None and "://" not in path and not Path(path).exists():
        raise ConfigError(f"s3prl:{name}@{path}: no such file or folder")
    try:
        upstream = s3prl.nn.S3PRLUpstream(name, path_or_url=path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"s3prl upstream {name!r} could not be loaded from "
                          f"{path or 'its download address'}: {' '.join(str(exc).split())[:200]}"
                          ) from None
    _BUILT[key] = upstream.eval()
    return _BUILT[key]


def revision(name: str, path: str | None) -> str:
    """A hash of the local checkpoint, else the s3prl release that fixes the download address."""
    if path is not None and Path(path).is_dir():
        return folder_revision(Path(path))
    if path is not None and Path(path).is_file():
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return "sha256:" + digest.hexdigest()[:16]
    import importlib.metadata as md

    return f"s3prl-{md.version('s3prl')}:{name}"


class S3PRLLoader:
    """``loader(device)`` of one s3prl entry."""

    def __init__(self, name: str, path: str | None) -> None:
        self.name, self.path = name, path

    def __call__(self, device: Any = None) -> Any:
        from .s3prl_module import S3PRLModule

        upstream = build(self.name, self.path)
        return S3PRLModule(upstream, revision(self.name, self.path)).to_device(device)


class S3PRLFactory:
    """The loader of the ``s3prl:`` spec itself, which names no entry."""

    def __call__(self, device: Any = None) -> Any:
        raise ConfigError("'s3prl:' needs an entry name: s3prl:<name> or s3prl:<name>@<path>")


def spec_for(rest: str) -> UpstreamSpec:
    """``UpstreamSpec.for_name`` of the ``s3prl:`` spec: the spec of ``s3prl:<rest>``."""
    name, path = parse(rest)
    upstream = build(name, path)
    sizes, rates = set(upstream.hidden_sizes), set(upstream.downsample_rates)
    if len(sizes) != 1 or len(rates) != 1:
        raise ConfigError(f"s3prl upstream {name!r} has layers of different widths or rates "
                          f"({sorted(sizes)}, {sorted(rates)}); serbench needs one of each")
    return UpstreamSpec(
        name=f"s3prl:{rest}", loader=S3PRLLoader(name, path),
        num_layers=upstream.num_layers, hidden_size=sizes.pop(),
        frame_rate=16000 / rates.pop(), revision=None, source=f"s3prl:{name}",
        description=f"s3prl upstream {name}" + (f" from {path}" if path else ""),
    )
