"""The predictor fitted on the shipped knowledge base, shipped beside it.

A first (cold) recommendation loads it instead of fitting for seconds. It is a gzip'd pickle
read by a restricted unpickler that builds only NumPy arrays and the predictor's own record
classes (the approach of skops' trusted types and ``torch.load(weights_only=True)``): a
tampered or foreign file cannot run code; it fails to load and the predictor is fitted instead.
It holds no scikit-learn object (the trees are NumPy arrays, :mod:`~recommender.metamodel.trees`),
so it does not depend on scikit-learn's version either.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import stat
import tempfile
import warnings
from pathlib import Path
from typing import Any

#: written by ``recommender kb calibrate`` after every change of the knowledge base
PREDICTOR_FILE = "predictor.pkl.gz"
MAX_BYTES = 256 * 2**20  # decompressed

#: every global the file may name: array reconstruction and the predictor's record classes
ALLOWED_GLOBALS = frozenset({
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("recommender.metamodel.predictor", "Predictor"),
    ("recommender.metamodel.estimators", "MetaModel"),
    ("recommender.metamodel.quality", "QualityModel"),
    ("recommender.metamodel.rule_gap", "RuleGapModel"),
    ("recommender.metamodel.pairwise", "PairwiseRuleModel"),
    ("recommender.metamodel.trees", "CompactQuantiles"),
    ("recommender.metamodel.trees", "CompactBinaryClassifier"),
    ("recommender.metamodel.trees", "TreeEnsemble"),
    *(("recommender.types", name) for name in ("MetaFeatures", "RunResult", "EvalPoint", "Environment",
                                                 "LatencyStats")),
})


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a shipped predictor")
        return super().find_class(module, name)


def restricted_loads(payload: bytes) -> Any:
    """Unpickle ``payload`` allowing only :data:`ALLOWED_GLOBALS`."""
    return _RestrictedUnpickler(io.BytesIO(payload)).load()


def shipped_path() -> Path:
    from recommender.knowledge_base import default_path

    return default_path().parent / PREDICTOR_FILE


def load_shipped_predictor(key: str) -> Any | None:
    """The shipped predictor when it was fitted for exactly ``key`` (the knowledge-base files'
    contents and the protocol, :func:`~recommender.metamodel.predictor.predictor_key`); None
    when there is none, it is stale, or it is not a file this module wrote."""
    from recommender.metamodel.predictor import PREDICTOR_VERSION, Predictor

    path = shipped_path()
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with gzip.open(path, "rb") as fh:
            payload = fh.read(MAX_BYTES + 1)
        if len(payload) > MAX_BYTES:
            raise ValueError(f"more than {MAX_BYTES} bytes decompressed")
        data = restricted_loads(payload)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - any damage means: fit instead
        warnings.warn(f"{path}: not a usable shipped predictor ({exc}); fitting instead", stacklevel=2)
        return None
    if (not isinstance(data, dict) or data.get("key") != key or data.get("version") != PREDICTOR_VERSION
            or not isinstance(data.get("predictor"), Predictor)):
        return None  # another knowledge base's (stale: run `recommender kb calibrate`)
    return data["predictor"]


def write_shipped_predictor() -> tuple[Path, Any]:
    """Fit the predictor on the shipped knowledge base and store it beside it, keyed by the
    files' contents (``recommender kb calibrate``, after ``kb export``)."""
    from recommender.errors import DataError
    from recommender.knowledge_base import default_path, load_knowledge_base, protocol1_path
    from recommender.metamodel.predictor import PREDICTOR_VERSION, fit_predictor, predictor_key

    paths = [p for p in (default_path(), protocol1_path()) if p.exists()]
    if not paths:
        raise DataError(f"knowledge base not found: {default_path()} (export one first: recommender kb export)")
    predictor = fit_predictor([row for p in paths for row in load_knowledge_base(p)])
    data = {"key": predictor_key(tuple(str(p) for p in paths)), "version": PREDICTOR_VERSION,
            "predictor": predictor}
    out = shipped_path()
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".predictor.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fh:
            fh.write(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out, predictor
