"""The structure the code promises: a new method is one module + one search space and nothing
else, so no other code may name a method; what a stage needs to know is declared on the method."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from recommender.methods import get_method_class, method_names

ROOT = Path(__file__).resolve().parents[1]
#: where method names may appear: the methods themselves, their search spaces, tests and data
CHECKED = ("recommender", "app", "benchmarks", "scripts")
ALLOWED = ("recommender/methods/",)


def _method_literals(path: Path, names: set[str]) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names]


def test_no_method_name_appears_as_a_string_literal_outside_the_method_modules() -> None:
    names = set(method_names())
    found = {}
    for folder in CHECKED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(ALLOWED):
                continue
            hits = _method_literals(path, names)
            if hits:
                found[rel] = hits
    assert not found, f"method names outside recommender/methods/: {found}"


@pytest.mark.parametrize("name", method_names())
def test_every_method_declares_what_the_other_stages_need(name: str) -> None:
    cls = get_method_class(name)
    method = cls()
    assert cls.artifact_kind in ("adapter", "full_model", "shared_model")
    total, add_one = cls.storage_mb(90.0, 0.5, 20)
    assert total > 0 and add_one
    if method.peft_config() is None:
        assert len(cls.no_peft_reason) > 20, f"{name}: say why there is no PEFT equivalent"
    flops = method.train_flops_per_token(1_000_000, 1000)
    assert 2_000_000 < flops <= 4_002_000
    if cls.budgeted_stage is not None:
        from recommender.config_utils import field_names

        assert cls.budgeted_stage[1] in field_names(cls.config_class)


def _imported_modules(path: Path, package: str) -> list[tuple[int, str]]:
    """Every module ``path`` imports, relative imports resolved against its ``package``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[:len(parts) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)):
            found.append((node.lineno, str(node.args[0].value)))
    return found


def test_the_cli_is_a_leaf_that_neither_the_library_nor_the_app_imports() -> None:
    """The command line sits on top: library code and the app never import it (the app may only
    start it as a subprocess, by its name in a string)."""
    found = {}
    for folder in ("recommender", "app"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel.as_posix().startswith("recommender/cli/"):
                continue
            package = ".".join(rel.parent.parts)
            hits = [(line, name) for line, name in _imported_modules(path, package)
                    if name == "recommender.cli" or name.startswith("recommender.cli.")]
            if hits:
                found[rel.as_posix()] = hits
    assert not found, f"imports of the CLI outside recommender/cli/: {found}"


def test_the_cli_leaf_check_sees_every_form_of_import(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    forms = {"import recommender.cli": "recommender.cli",
             "from recommender.cli.args import Parser": "recommender.cli.args",
             "from recommender import cli": "recommender.cli",
             "from .. import cli": "recommender.cli",
             "from ..cli import main": "recommender.cli",
             "importlib.import_module('recommender.cli')": "recommender.cli"}
    for statement, module in forms.items():
        source.write_text(statement + "\n", encoding="utf-8")
        names = [name for _, name in _imported_modules(source, "recommender.search")]
        assert module in names, (statement, names)


#: third-party packages whose own sources mypy need not read to check ours (their names then
#: type as Any): following torch and transformers took 60 of the test's 65 s
UNFOLLOWED = ("torch", "transformers", "adapters", "optuna", "sklearn", "scipy", "pandas", "streamlit",
              "sqlalchemy", "huggingface_hub", "tokenizers", "safetensors", "matplotlib")


def test_the_hand_off_records_the_pipeline_and_the_method_base_pass_mypy_strict(tmp_path: Path) -> None:
    from mypy import api

    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\nignore_missing_imports = True\npython_version = 3.11\n"
                      f"[mypy-{','.join(name + '.*' for name in UNFOLLOWED)}]\nfollow_imports = skip\n",
                      encoding="utf-8")
    files = [str(ROOT / "recommender" / name) for name in ("types.py", "pipeline.py", "methods/base.py")]
    out, err, status = api.run(["--strict", "--follow-imports=silent", "--no-incremental",
                                "--config-file", str(config), *files])
    assert status == 0, out + err
