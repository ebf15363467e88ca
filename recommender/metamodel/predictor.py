"""Everything a recommendation predicts from, fitted once and cached (signed) per knowledge base.

:class:`Predictor` bundles the quality-at-budget model
(:class:`~recommender.metamodel.quality.QualityModel`), the meta-model for time, latency and
memory (:class:`~recommender.metamodel.estimators.MetaModel`), the robust default per scenario
(the best fixed rule over the knowledge base, :func:`~recommender.metamodel.replay_eval.method_ranking`),
the probability that each configuration beats it (:class:`~recommender.metamodel.pairwise.PairwiseRuleModel`,
which the replay evaluation chose over the difference model of :mod:`~recommender.metamodel.rule_gap`)
and the range of tasks measured (for extrapolation warnings). It learns from protocol-2 runs of
the knowledge base (falling back to older ones while there are none, with a note) plus the
user's own runs once there are :data:`MIN_USER_RUNS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from recommender.metamodel.estimators import MetaModel
from recommender.metamodel.features import task_vector
from recommender.metamodel.pairwise import PairwiseRuleModel
from recommender.metamodel.quality import CURRENT_PROTOCOL, QualityModel, select_protocol
from recommender.metamodel.rule_gap import RuleGapModel
from recommender.types import MetaFeatures

#: bump when the fitted objects change shape or how they are fitted: old cache files are then never read
PREDICTOR_VERSION = 10
META_TARGETS = ("log_cost", "log_memory", "latency_ratio_b1", "latency_ratio_bB")
MIN_USER_RUNS = 5


@dataclass
class Predictor:
    meta: MetaModel
    quality: QualityModel
    kb_features: list[MetaFeatures]
    rankings: dict[str, list[str]]
    notes: list[str] = field(default_factory=list)
    top_features: list[str] = field(default_factory=list)
    lead_model: PairwiseRuleModel | RuleGapModel | None = None  # the regret-aware top pick (None: too few sets)

    @property
    def n_runs(self) -> int:
        return int(self.meta.n_runs_)


def fit_predictor(kb_rows: Sequence[Any], user_rows: Sequence[Any] = (), *,
                  min_protocol: int = CURRENT_PROTOCOL) -> Predictor:
    """Fit every model on ``kb_rows`` at ``min_protocol`` or later (+ ``user_rows`` when enough)."""
    from recommender.metamodel.replay_eval import SCENARIOS, method_ranking, shipped_lead_model, task_sets

    rows, note = select_protocol(kb_rows, min_protocol)
    notes = [note] if note else []
    scored_user = [r for r in user_rows if r.result.has_metric]
    learns_user_rows = len(scored_user) >= MIN_USER_RUNS
    if learns_user_rows:
        known = {r.run_id for r in rows}
        rows = rows + [r for r in user_rows if r.run_id not in known]
    elif scored_user:
        notes.append(f"{len(scored_user)} of your own runs are not learned from yet (from {MIN_USER_RUNS})")
    sets = task_sets(rows)
    rankings = {sc: method_ranking(sets, sc) for sc in SCENARIOS} if sets else {}
    features = list({r.metafeatures.fingerprint: r.metafeatures for r in rows}.values())
    # quality comes from the quality model; the meta-model predicts cost, memory and latency only
    meta = MetaModel(targets=META_TARGETS).fit(rows)
    quality = QualityModel().fit(rows)
    ranked = quality.feature_importance(rows)  # computed once here: it takes a second
    task_features = set(task_vector(rows[0].metafeatures)) if rows else set()
    top = [name for name, value in ranked.items() if value > 0 and name in task_features][:5]
    # predicting needs neither scikit-learn nor its estimators: a warm start then imports neither
    lead_model = shipped_lead_model().fit(sets, rankings).compact() if rankings else None
    return Predictor(meta.compact(), quality.compact(), features, rankings, notes, top, lead_model)


@lru_cache(maxsize=4)
def _load(kb_paths: tuple[str, ...], key: str, user: tuple[Any, ...], min_protocol: int) -> Predictor:
    from recommender.knowledge_base import load_knowledge_base
    from recommender.metamodel.cache import cached
    from recommender.metamodel.shipped import load_shipped_predictor

    def build() -> Predictor:
        shipped = None if user else load_shipped_predictor(key)  # the key then names the files alone
        if shipped is not None:
            return shipped  # type: ignore[no-any-return]
        rows = [row for p in kb_paths for row in load_knowledge_base(Path(p))]
        return fit_predictor(rows, list(user), min_protocol=min_protocol)

    return cached(key, build)


class _Rows(tuple):  # type: ignore[type-arg]
    """User rows hashed by their run ids (for the in-memory cache)."""

    def __hash__(self) -> int:
        return hash(tuple(r.run_id for r in self))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, tuple) and [r.run_id for r in self] == [getattr(r, "run_id", None) for r in other]


def load_predictor(storage: str | None = None, kb_path: Path | None = None, *,
                   min_protocol: int = CURRENT_PROTOCOL) -> Predictor:
    """The fitted :class:`Predictor`, from memory, from the signed disk cache, or fitted now.

    The cache key is the knowledge base's contents plus the ids of the user's scored runs in
    ``storage`` once there are :data:`MIN_USER_RUNS` of them (before that they are not learned
    from, so a search writing its first trials does not force a refit). A storage file that
    does not exist yet is not created."""
    from recommender.knowledge_base import default_path, protocol1_path, rows_from_storage
    from recommender.store import storage_file

    # the shipped knowledge base is the current protocol's file and the older one's
    paths = [Path(kb_path)] if kb_path else [p for p in (default_path(), protocol1_path()) if p.exists()]
    user: list[Any] = []
    if storage:
        local = storage_file(storage)
        if local is None or local.exists():
            user = [r for r in rows_from_storage(storage) if r.result.has_metric]
    if len(user) < MIN_USER_RUNS:
        user = []
    user.sort(key=lambda r: r.run_id)
    key = predictor_key(tuple(str(p) for p in paths), min_protocol, [r.run_id for r in user])
    return _load(tuple(str(p) for p in paths), key, _Rows(user), min_protocol)


def predictor_key(kb_paths: Sequence[str], min_protocol: int = CURRENT_PROTOCOL,
                  user_run_ids: Sequence[str] = ()) -> str:
    """What a fitted :class:`Predictor` depends on: the knowledge-base files' contents, the
    protocol and the user's runs learned from."""
    from recommender.metamodel.cache import fingerprint

    return fingerprint(PREDICTOR_VERSION, *map(Path, kb_paths), min_protocol, *user_run_ids)
