"""Search spaces as data: ``search_spaces/<method>.json`` -> Optuna distributions.

Each file names its method and maps hyperparameter names to a distribution
(``{"type": "float"|"int", "low", "high", "log"}`` or ``{"type": "categorical", "choices"}``)
or to a constant. ``_shared.json`` holds the hyperparameters every method shares; a method file
overrides or extends it. Optuna parameter names are ``<method>.<name>``, after a first
``method`` choice, so the space is conditional: each method's parameters exist only in its
trials.

A method file may also carry ``"defaults": {"learning_rate": x, "batch_size": y}``: the tuned
defaults (see :mod:`recommender.defaults`), which win over the method class's own and must lie
inside the parameter's range where it is searched.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recommender.defaults import parse_defaults
from recommender.errors import ConfigError, unknown_name
from recommender.paths import search_spaces_dir

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

METHOD_PARAM = "method"
SHARED_FILE = "_shared.json"


@dataclass(frozen=True)
class SearchSpace:
    """One method's space: distributions to sample and constants to pass as they are."""

    method: str
    distributions: dict[str, Any]  # name -> optuna distribution
    constants: dict[str, Any]
    source: str
    default_values: dict[str, Any] = field(default_factory=dict)  # the file's "defaults"

    def optuna_name(self, name: str) -> str:
        return f"{self.method}.{name}"

    def defaults(self) -> dict[str, Any]:
        """The method's default hyperparameters restricted to this space (for warm starts):
        the file's ``"defaults"``, else the method's and ``TrainingConfig``'s own."""
        import dataclasses

        from recommender.methods import get_method_class
        from recommender.training.config import TrainingConfig

        cls = get_method_class(self.method)
        values = {f.name: f.default for f in dataclasses.fields(TrainingConfig)}
        values.update({f.name: f.default for f in dataclasses.fields(cls.config_class)})
        values["learning_rate"] = cls.default_learning_rate
        values.update(self.default_values)
        return {name: values[name] for name in self.distributions}

    def holds_defaults(self, params: dict[str, Any]) -> bool:
        """Whether ``params`` are this method's defaults (:meth:`defaults` and the constants;
        numbers equal to a relative 1e-9: a grid's 3 x 5e-05 is stored as 0.00015000000000000001)."""
        for name, value in {**self.constants, **self.defaults()}.items():
            given = params.get(name, value)
            if isinstance(value, (int, float)) and isinstance(given, (int, float)) and not isinstance(value, bool):
                if not math.isclose(float(given), float(value), rel_tol=1e-9):
                    return False
            elif given != value:
                return False
        return True

    def params_from_trial(self, trial_params: dict[str, Any]) -> dict[str, Any]:
        """Hyperparameters for the trainer from an Optuna trial's ``<method>.<name>`` params."""
        prefix = f"{self.method}."
        params = {k[len(prefix):]: v for k, v in trial_params.items() if k.startswith(prefix)}
        return {**self.constants, **params}


def _distribution(spec: Any, where: str) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if not isinstance(spec, dict) or "type" not in spec:
        return None  # a constant
    kind = spec["type"]
    try:
        if kind in ("float", "int"):
            low, high, log = spec["low"], spec["high"], bool(spec.get("log", False))
            if not low < high:
                raise ConfigError(f"{where}: low={low} must be below high={high}")
            if log and low <= 0:
                raise ConfigError(f"{where}: a log range needs low > 0, got low={low}")
            if kind == "int":
                return IntDistribution(int(low), int(high), log=log)
            return FloatDistribution(float(low), float(high), log=log)
        if kind == "categorical":
            choices = spec["choices"]
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{where}: 'choices' must be a non-empty list")
            return CategoricalDistribution(choices)
    except KeyError as exc:
        raise ConfigError(f"{where}: missing key {exc.args[0]!r}") from None
    raise ConfigError(f"{where}: unknown type {kind!r}; expected float, int or categorical")


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"search space {path}: invalid JSON at line {exc.lineno} ({exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("params", {}), dict):
        raise ConfigError(f"search space {path}: expected an object with a 'params' object")
    return data


def _valid_names(method: str) -> list[str]:
    from recommender.config_utils import field_names
    from recommender.methods import get_method_class
    from recommender.training.config import TrainingConfig

    return field_names(TrainingConfig) + field_names(get_method_class(method).config_class)


def _check_default(dist: Any, value: Any, where: str) -> None:
    """A default must be a value its own search could sample."""
    from optuna.distributions import CategoricalDistribution

    if dist is None:
        return
    if isinstance(dist, CategoricalDistribution):
        if value not in dist.choices:
            raise ConfigError(f"{where}={value!r} is not among the choices {list(dist.choices)}")
    elif not dist.low <= value <= dist.high:
        raise ConfigError(f"{where}={value!r} lies outside the searched range [{dist.low}, {dist.high}]")


@lru_cache(maxsize=8)
def _load_all(root: str) -> dict[str, SearchSpace]:
    folder = Path(root)
    shared_file = folder / SHARED_FILE
    shared = _read(shared_file)["params"] if shared_file.exists() else {}
    spaces: dict[str, SearchSpace] = {}
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("_"):
            continue
        data = _read(path)
        method = data.get("method")
        if method != path.stem:
            raise ConfigError(f"search space {path}: 'method' is {method!r}; it must equal the file name {path.stem!r}")
        valid = _valid_names(method)
        distributions, constants = {}, {}
        for name, spec in {**shared, **data["params"]}.items():
            where = f"search space {path.name}, parameter {name!r}"
            if name not in valid:
                raise ConfigError(f"{where}: not a hyperparameter of {method}; valid: {', '.join(valid)}")
            dist = _distribution(spec, where)
            if dist is None:
                constants[name] = spec
            else:
                distributions[name] = dist
        defaults = parse_defaults(data, f"search space {path.name}")
        for name, value in defaults.items():
            _check_default(distributions.get(name), value, f"search space {path.name}, defaults.{name}")
        spaces[method] = SearchSpace(method, distributions, constants, str(path), defaults)
    return spaces


def load_spaces(folder: Path | None = None) -> dict[str, SearchSpace]:
    """Every search space in ``folder`` (default ``search_spaces/``), validated."""
    return _load_all(str(folder or search_spaces_dir()))


def get_space(method: str, folder: Path | None = None) -> SearchSpace:
    spaces = load_spaces(folder)
    if method not in spaces:
        raise unknown_name("search space", method, list(spaces))
    return spaces[method]


def holds_defaults(method: str, params: dict[str, Any], folder: Path | None = None) -> bool:
    """Whether ``params`` are ``method``'s defaults (False for a method without a search space)."""
    spaces = load_spaces(folder)
    return method in spaces and spaces[method].holds_defaults(params)


def suggest(trial: optuna.Trial, methods: list[str], folder: Path | None = None) -> tuple[str, dict[str, Any]]:
    """Sample the method first, then its hyperparameters (the conditional space)."""
    method = trial.suggest_categorical(METHOD_PARAM, methods)
    space = get_space(str(method), folder)
    for name, dist in space.distributions.items():
        trial._suggest(space.optuna_name(name), dist)
    return str(method), space.params_from_trial(trial.params)


def default_trial_params(method: str, folder: Path | None = None) -> dict[str, Any]:
    """Optuna params of the method's defaults, for ``study.enqueue_trial``."""
    space = get_space(method, folder)
    return {METHOD_PARAM: method, **{space.optuna_name(k): v for k, v in space.defaults().items()}}


def fixed_distributions(method: str, methods: Sequence[str], folder: Path | None = None
                        ) -> dict[str, BaseDistribution]:
    """All distributions of one method's trial (for ``study.ask`` / ``add_trial``)."""
    from optuna.distributions import CategoricalDistribution

    space = get_space(method, folder)
    out: dict[str, Any] = {METHOD_PARAM: CategoricalDistribution(list(methods))}
    out.update({space.optuna_name(k): d for k, d in space.distributions.items()})
    return out


def trial_params(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """An Optuna trial's parameters for ``method`` with ``params`` (e.g. a recommended
    configuration): values the method's space cannot hold are left out for the sampler to fill."""
    space = get_space(method)
    out: dict[str, Any] = {METHOD_PARAM: method}
    for name, dist in space.distributions.items():
        value = params.get(name)
        try:
            if value is not None and dist._contains(dist.to_internal_repr(value)):
                out[space.optuna_name(name)] = value
        except ValueError:
            continue
    return out


def sample_params(space: SearchSpace, rng: Any) -> dict[str, Any]:
    """Independent random values from every distribution of ``space`` (``rng``: random.Random)."""
    import math

    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for name, dist in space.distributions.items():
        if isinstance(dist, CategoricalDistribution):
            out[name] = rng.choice(list(dist.choices))
        elif isinstance(dist, IntDistribution):
            if dist.log:
                out[name] = int(round(math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))))
            else:
                out[name] = rng.randint(dist.low, dist.high)
        elif isinstance(dist, FloatDistribution):
            if dist.log:
                out[name] = math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))
            else:
                out[name] = rng.uniform(dist.low, dist.high)
    return out
