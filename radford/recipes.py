"""Recipes: LightningCLI configs found by name in the recipe folders that distributions register.

radford's own folder (top-level ``recipes/`` in the source tree) registers in the ``radford.recipes``
entry-point group like a plugin's does, so ``radford fit --recipe igpt-digits`` finds a plugin's recipe.
A recipe's first comment line is its one-line description.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from radford import registry
from radford.config_errors import bad_values
from radford.errors import RadfordError

SUFFIX = ".yaml"


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    distribution: str

    @property
    def description(self) -> str:
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
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
    raise RadfordError(
        f"unknown recipe {recipe!r}: no such file, and no bundled recipe of that name; valid: {valid}{switched_off}"
    )


class Located(dict):
    """A recipe's mapping, with the line of each of its keys (1-based), so that an error can point at it."""

    lines: dict[Any, int]


class DuplicateKey(yaml.constructor.ConstructorError):
    """A key given twice in one mapping: YAML keeps the later value without a word."""


class RecipeLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping and records where each key is."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Located:
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *base`` merges; its keys may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # SafeLoader's own construct_mapping refuses it, naming the line
            line = key_node.start_mark.line + 1
            if key in lines:
                raise DuplicateKey(
                    problem=f"key {key!r} is given twice, at lines {lines[key]} and {line}; give it once",
                    problem_mark=key_node.start_mark,
                )
            lines[key] = line
        mapping = Located(super().construct_mapping(node, deep=deep))
        mapping.lines = lines
        return mapping


RecipeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, RecipeLoader.construct_mapping)


def _where(config: Located, keys: tuple[str, ...]) -> str:
    """``, line N`` for a key path of a loaded recipe; empty where YAML merged the key in (``<<: *anchor``)."""
    for key in keys[:-1]:
        config = config[key]
    line = config.lines.get(keys[-1])
    return f", line {line}" if line else ""


def load(path: Path) -> dict[str, Any]:
    """Read a recipe's YAML; malformed YAML or text that is not UTF-8, a key given twice, a non-mapping top level,
    or a value no class could take (``config_errors.bad_values``) is one clear line naming the file and the line."""
    try:
        text = path.read_bytes().decode("utf-8")  # whole: a text stream's decode error counts from its last chunk
    except OSError as error:
        raise RadfordError(f"cannot read recipe {str(path)!r}: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise RadfordError(
            f"recipe {str(path)!r} is not UTF-8 text: byte {error.start} is "
            f"0x{error.object[error.start]:02x}; save it as UTF-8"
        ) from error
    try:
        config = yaml.load(text, Loader=RecipeLoader)  # a SafeLoader: plain data only
    except DuplicateKey as error:
        raise RadfordError(f"recipe {str(path)!r}: {error.problem}") from error
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
    bad = next(bad_values(config), None)
    if bad is not None:
        keys, problem = bad
        raise RadfordError(f"recipe {str(path)!r}{_where(config, keys)}: {'.'.join(keys)} {problem}")
    return config
