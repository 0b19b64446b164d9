"""Recipes: LightningCLI configs found by name in the recipe folders that distributions register.

radford's own folder (top-level ``recipes/`` in the source tree) registers in the ``radford.recipes``
entry-point group like a plugin's does, so ``radford fit --recipe igpt-digits`` finds a plugin's recipe.
A recipe's first comment line is its one-line description.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from radford import registry
from radford.errors import RadfordError

SUFFIX = ".yaml"


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    distribution: str

    @property
    def description(self) -> str:
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.startswith("#"):
                return line.lstrip("#").strip()
            if line.strip():
                break
        return ""


def _folders() -> list[tuple[registry.Plugin, Path]]:
    """Recipe folders that ``RADFORD_PLUGINS`` enables, built-ins first; one whose package fails to import is
    skipped."""
    found = []
    for plugin in sorted(registry.plugins("recipes"), key=lambda p: (not p.builtin, p.name)):
        try:
            package = plugin.load()
        except registry.PluginLoadError:
            continue
        found.append((plugin, Path(str(importlib.resources.files(package)))))
    return found


def list_recipes() -> list[Recipe]:
    """Every recipe, built-in and plugin-provided; on a name clash the first folder (built-ins) wins."""
    recipes: dict[str, Recipe] = {}
    for plugin, folder in _folders():
        for path in sorted(folder.rglob(f"*{SUFFIX}")):
            name = path.relative_to(folder).with_suffix("").as_posix()
            recipes.setdefault(name, Recipe(name, path, plugin.distribution))
    return sorted(recipes.values(), key=lambda r: r.name)


def find(recipe: str) -> Path:
    """A recipe's file: an existing YAML path, or a recipe name with or without ``.yaml``."""
    path = Path(recipe).expanduser()
    if path.is_file():
        return path
    name = recipe.removesuffix(SUFFIX)
    known = list_recipes()
    for candidate in known:
        if candidate.name == name:
            return candidate.path
    valid = ", ".join(r.name for r in known)
    hidden = sorted({p.distribution for p in registry.registered("recipes") if not p.enabled})
    switched_off = f" ({registry.SWITCH} disables the recipes of {', '.join(hidden)})" if hidden else ""
    raise RadfordError(f"unknown recipe {recipe!r}: no such file, and no bundled recipe of that name; valid: {valid}"
                       f"{switched_off}")


def load(path: Path) -> dict[str, Any]:
    """Read a recipe's YAML; malformed YAML or a non-mapping top level is one clear line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RadfordError(f"cannot read recipe {str(path)!r}: {error.strerror}") from error
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise RadfordError(f"malformed YAML in recipe {str(path)!r}{where}: {problem}") from error
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise RadfordError(
            f"recipe {str(path)!r} must be a mapping of sections (model, data, trainer, ...), "
            f"not a {type(config).__name__}"
        )
    return config
