"""Writing a bundle: every file into a temporary folder next to the target, renamed into place
at the end, so that nothing is written unless the whole bundle is."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

from recommender.export.errors import ExportError, Progress
from recommender.export.readme import render_readme
from recommender.export.retrain import retrain
from recommender.export.safety import is_bundle
from recommender.export.sections import BundleFiles
from recommender.export.spec import BundleSpec, jsonable
from recommender.export.template import render_train_script


def write_bundle(out: Path, spec: BundleSpec, fmt: str, force: bool, *, with_weights: bool, merged: bool,
                 progress: Progress | None) -> Path:
    """Write ``spec`` as a bundle at ``out`` (retraining for the weights with ``with_weights``)."""
    created = _first_missing_ancestor(out.parent)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.partial"
        tmp.mkdir()  # not mkdtemp: the bundle gets ordinary (umask) permissions
    except OSError as exc:
        _remove(created)
        raise ExportError(f"cannot write the bundle to {out}: {exc.strerror or exc}") from None
    try:
        _write_files(tmp, spec, fmt, with_weights=with_weights, merged=merged, progress=progress)
        _commit(tmp, out, force)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove(created)
        if isinstance(exc, OSError):
            raise ExportError(f"cannot write the bundle to {out}: {exc.strerror or exc}; nothing was "
                              "written") from None
        raise
    return out


def _write_files(tmp: Path, spec: BundleSpec, fmt: str, *, with_weights: bool, merged: bool,
                 progress: Progress | None) -> None:
    peft = spec.method.peft_config
    if peft is not None:
        peft_text = json.dumps(peft, indent=2) + "\n"
        (tmp / "peft_config.json").write_text(peft_text, encoding="utf-8")
        (tmp / "peft").mkdir()
        (tmp / "peft" / "adapter_config.json").write_text(peft_text, encoding="utf-8")
    (tmp / "train.py").write_text(render_train_script(spec), encoding="utf-8")
    files = BundleFiles.for_bundle(fmt, peft=peft is not None, weights=with_weights)
    weights = retrain(spec.with_files(files), tmp / "weights", merged, progress) if with_weights else None
    spec = spec.with_files(files, weights)
    dump_config(spec, tmp / files.config, fmt)
    (tmp / files.readme).write_text(render_readme(spec), encoding="utf-8")


def dump_config(spec: BundleSpec, path: Path, fmt: str) -> None:
    """Write the record as JSON or YAML (``fmt``)."""
    data = jsonable(spec.to_dict())
    if fmt == "yaml":
        import yaml

        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)
    else:
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")


def _first_missing_ancestor(path: Path) -> Path | None:
    missing = None
    while not path.exists():
        missing, path = path, path.parent
        if path == path.parent:
            break
    return missing


def _remove(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def _commit(tmp: Path, out: Path, force: bool) -> None:
    """Rename ``tmp`` to ``out``, replacing an earlier bundle only with ``force``."""
    backup = None
    if out.exists() or out.is_symlink():
        if not force or not out.is_dir() or not is_bundle(out.resolve()):
            raise ExportError(f"output folder {out} appeared or changed while exporting; nothing was written")
        backup = out.parent / f".{out.name}.{os.getpid()}.{int(time.time() * 1000)}.old"
        os.replace(out, backup)
    try:
        os.replace(tmp, out)
    except OSError:
        if backup is not None:
            os.replace(backup, out)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
