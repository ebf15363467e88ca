"""A fitted model persisted in the user folder, signed so that only this user's own files load.

The payload is a pickle (of any fitted object: a fitted predictor holds NumPy arrays and records,
but the cache does not restrict what it stores), so it is only ever unpickled after its
HMAC-SHA256 matches, under a per-user secret key created with mode
0600. A file anyone else wrote, edited or truncated fails the check, is deleted and the model is
refitted: nothing a user or a shared store can supply is unpickled.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import stat
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from recommender.paths import user_dir

KEY_FILE = "cache.key"
CACHE_DIR = "model-cache"
KEEP = 4  # fitted models kept on disk
T = TypeVar("T")


def _secret(folder: Path) -> bytes | None:
    """This user's secret key (created 0600 on first use); None when it cannot be trusted."""
    path = folder / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(32))
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if (not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077 or info.st_uid != os.getuid()
            or info.st_size != 32):
        warnings.warn(f"{path}: not a private 32-byte key file of this user; the model cache is not used",
                      stacklevel=3)
        return None
    return path.read_bytes()


def fingerprint(*parts: Any) -> str:
    """A short hash of ``parts`` (file contents for paths, ``str`` otherwise)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            digest.update(part.read_bytes() if part.is_file() else b"missing:" + str(part).encode())
        else:
            digest.update(str(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def cache_path(key: str, folder: Path | None = None) -> Path:
    if not key.isalnum():
        raise ValueError(f"cache key must be alphanumeric; got {key!r}")
    return (folder or user_dir()) / CACHE_DIR / f"{key}.bin"


def load_signed(key: str, folder: Path | None = None) -> Any | None:
    """The object stored under ``key`` if its signature verifies; None (and the file removed)
    otherwise."""
    folder = folder or user_dir()
    secret = _secret(folder)
    path = cache_path(key, folder)
    if secret is None or not path.exists():
        return None
    if not stat.S_ISREG(os.lstat(path).st_mode):
        return None
    blob = path.read_bytes()
    tag, payload = blob[:32], blob[32:]
    if len(tag) != 32 or not hmac.compare_digest(tag, hmac.new(secret, payload, hashlib.sha256).digest()):
        warnings.warn(f"{path}: signature does not match; ignoring the cached model and refitting", stacklevel=2)
        path.unlink(missing_ok=True)
        return None
    return pickle.loads(payload)  # noqa: S301 - authenticated above with this user's key


def save_signed(key: str, obj: Any, folder: Path | None = None) -> Path | None:
    """Store ``obj`` under ``key`` atomically, signed; None when there is no usable key."""
    folder = folder or user_dir()
    secret = _secret(folder)
    if secret is None:
        return None
    path = cache_path(key, folder)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".model.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(hmac.new(secret, payload, hashlib.sha256).digest() + payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _prune(path.parent, keep=KEEP)
    return path


def _prune(folder: Path, keep: int) -> None:
    """Remove all but the ``keep`` most recently written models (old knowledge bases, old storages)."""
    files = sorted(folder.glob("*.bin"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        old.unlink(missing_ok=True)


def cached(key: str, build: Callable[[], T], folder: Path | None = None) -> T:
    """``build()``'s result, from the signed cache when it is there and intact."""
    hit = load_signed(key, folder)
    if hit is not None:
        return hit  # type: ignore[no-any-return]
    value = build()
    try:
        save_signed(key, value, folder)
    except OSError as exc:  # a read-only home still gets its recommendation
        warnings.warn(f"could not cache the fitted model: {exc}", stacklevel=2)
    return value
