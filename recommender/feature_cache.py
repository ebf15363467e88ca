"""Meta-features cached on disk by fingerprint, and a warm-up that fills the cache.

A fingerprint covers what the meta-features are computed from: the data (a file's bytes or a
bundled task's files), the column mapping, and the code that computes them (a change to
``recommender/metafeatures.py`` invalidates every entry). Entries are JSON files under
``<user_dir>/cache/metafeatures`` (mode 0600), read back through ``MetaFeatures.from_dict``;
a damaged or outdated entry is recomputed, never trusted.

``python -m recommender.feature_cache --warm`` computes every bundled task's meta-features and
calibrates this machine for their sequence lengths, at the lowest CPU priority (the app starts
it once per server so that switching tasks only reads caches).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
from collections.abc import Callable
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from recommender.paths import user_dir
from recommender.types import MetaFeatures

FINGERPRINT = re.compile(r"^[0-9a-f]{16,64}$")


@lru_cache(maxsize=1)
def _code_version() -> str:
    source = Path(__file__).resolve().parent / "metafeatures.py"
    return hashlib.sha256(source.read_bytes()).hexdigest()[:16]


def fingerprint(*parts: Any) -> str:
    """A hex digest of ``parts`` (bytes as they are, anything else as sorted JSON) and of the
    meta-feature code."""
    h = hashlib.sha256(_code_version().encode())
    for part in parts:
        h.update(b"\x00")
        h.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def bundled_fingerprint(name: str) -> str:
    """Fingerprint of a bundled task: its name, spec and the size and time of its files."""
    from recommender.tasks.bundled import bundled_spec

    spec, folder = bundled_spec(name)
    files = sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime)
                   for p in Path(folder).rglob("*") if p.is_file())
    return fingerprint("bundled", name, spec.to_dict() if hasattr(spec, "to_dict") else repr(spec), files)


def _path(key: str) -> Path:
    if not FINGERPRINT.match(key):
        raise ValueError(f"fingerprint {key!r}; expected 16-64 hex digits")
    return user_dir() / "cache" / "metafeatures" / f"{key}.json"


def load(key: str) -> MetaFeatures | None:
    """The cached meta-features for ``key``, or None (missing, damaged or from older code)."""
    try:
        data = json.loads(_path(key).read_text(encoding="utf-8"))
        return MetaFeatures.from_dict(data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError, KeyError):
        return None


def store(key: str, features: MetaFeatures) -> None:
    path = _path(key)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(features.to_dict(), fh)
    os.replace(tmp, path)


def cached_metafeatures(key: str, task: Any | Callable[[], Any]) -> MetaFeatures:
    """Meta-features for ``key`` from the disk cache, else computed from ``task`` (a Task, or a
    function returning one: it is only called on a miss) and stored."""
    from recommender.metafeatures import compute_metafeatures

    found = load(key)
    if found is not None:
        return found
    features = compute_metafeatures(task() if callable(task) else task)
    store(key, features)
    return features


def warm(names: list[str] | None = None, hardware: str = "auto", batches: tuple[int, ...] = (1, 32)) -> int:
    """Meta-features of every bundled task (``names``) in the cache, and this machine calibrated
    for their sequence lengths; returns how many tasks were done."""
    from recommender.metamodel.calibration import hardware_profile, seq_bucket
    from recommender.tasks import bundled_task_names, load_task

    done = 0
    for name in names or sorted(bundled_task_names(), key=lambda n: n != "glue_sst2"):
        features = cached_metafeatures(bundled_fingerprint(name), partial(load_task, name))
        hardware_profile(hardware, seq_bucket(features.tokens_p95), batches)
        done += 1
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fill the meta-feature cache and the calibration for the bundled "
                                                 "tasks, at the lowest CPU priority.")
    parser.add_argument("--warm", action="store_true", required=True)
    parser.add_argument("--hardware", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args(argv)
    try:
        os.nice(19)
    except OSError:
        pass
    from recommender.errors import RecommenderError

    try:
        warm(hardware=args.hardware)
    except RecommenderError as exc:
        print(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
