"""The rules for where a bundle may be written, and what ``force`` may replace.

``force`` replaces only an earlier bundle (a folder whose config file says this package wrote it),
and never the current folder, a home folder, the user folder or a folder holding the run store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recommender.export.errors import ExportError
from recommender.export.spec import FORMATS, KINDS

#: a config file larger than this is not read when checking for a bundle
MAX_MANIFEST_BYTES = 50_000_000


def check_target(out: Path, force: bool, protected: tuple[Path, ...] = ()) -> Path:
    """The absolute bundle path; ``force`` may replace only an earlier bundle in a harmless place.

    ``protected`` are files (the run store) whose folders must never be replaced.
    """
    out = out.expanduser()
    if out.is_file() or (out.is_symlink() and not out.is_dir()):
        raise ExportError(f"output {out} is a file; give a folder path for the bundle")
    if out.exists() and not force:
        raise ExportError(f"output folder {out} already exists; choose another or pass --force to replace it")
    if out.exists():
        check_replaceable(out, protected)
    return out.absolute()


def check_replaceable(out: Path, protected: tuple[Path, ...] = ()) -> None:
    """Refuse to replace anything but an earlier bundle, and never a folder that holds ours or yours."""
    real = out.resolve()
    from recommender.paths import user_dir

    guarded = [(Path.cwd(), "the current directory"), (Path.home(), "your home directory"),
               (user_dir(create=False), "the recommender user folder")]
    guarded += [(p.expanduser().absolute(), f"the run store {p}") for p in protected]
    for path, what in guarded:
        path = path.resolve()
        if real == path or real in path.parents:
            raise ExportError(f"--force will not replace {out}: it is or contains {what}; choose another "
                              "output folder")
    if not is_bundle(real):
        raise ExportError(f"--force will not replace {out}: it is not an earlier bundle (no config.json or "
                          "config.yaml written by `recommender export`); choose another output folder")


def is_bundle(path: Path) -> bool:
    """Whether ``path`` is a folder written by this package (its config file is the manifest)."""
    if not (path / "train.py").is_file():
        return False
    for fmt in FORMATS:
        data = _read_manifest(path / f"config.{fmt}")
        if (isinstance(data, dict) and isinstance(data.get("schema_version"), int)
                and data.get("kind") in KINDS
                and str(data.get("exported_by", "")).startswith("recommender")):
            return True
    return False


def _read_manifest(path: Path) -> Any:
    if not path.is_file() or path.stat().st_size > MAX_MANIFEST_BYTES:
        return None
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            return json.loads(text)
        import yaml

        return yaml.safe_load(text)
    except Exception:  # unreadable or not JSON/YAML (yaml.YAMLError is no ValueError): not a bundle
        return None
