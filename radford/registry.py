"""Plugins through Python entry points: models, data modules, tokenizers and recipe folders.

radford's own models register in its ``pyproject.toml`` exactly as a third-party package would. Listing
reads entry-point metadata only; a plugin's code is imported the first time a recipe names it, so a
broken plugin costs nothing until then. A plugin that fails to import is remembered with its
distribution and error, shown as broken by ``radford plugins``, and raised as one clear line only when
it is asked for. Built-ins win a name clash; two third parties claiming one name is an error that names
both. Loading is idempotent and does no device work (DDP and FSDP start new processes that load again).
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from functools import cache
from typing import Any

from radford.errors import RadfordError

GROUPS = {
    "models": "radford.models",
    "data": "radford.data",
    "tokenizers": "radford.tokenizers",
    "recipes": "radford.recipes",
}
BUILTIN_DISTRIBUTION = "radford"


class PluginLoadError(RadfordError):
    """A registered plugin whose code fails to import."""


@dataclass(frozen=True)
class Plugin:
    """One entry point: ``name = "module:attr"`` in group ``radford.<kind>`` of ``distribution``."""

    kind: str
    name: str
    target: str
    distribution: str

    @property
    def builtin(self) -> bool:
        return self.distribution == BUILTIN_DISTRIBUTION

    @property
    def class_path(self) -> str:
        """The target as jsonargparse spells an import path (``radford.models.gpt.GPT``)."""
        return self.target.replace(":", ".")

    def load(self) -> Any:
        return _import(self)


def _check_kind(kind: str) -> str:
    if kind not in GROUPS:
        raise RadfordError(f"unknown plugin kind {kind!r}; choose from: {', '.join(GROUPS)}")
    return GROUPS[kind]


@cache
def _claims(kind: str) -> dict[str, tuple[Plugin, ...]]:
    """Every distribution's claim on every name of one kind, read from metadata without importing."""
    group = _check_kind(kind)
    claims: dict[str, list[Plugin]] = {}
    for ep in importlib.metadata.entry_points(group=group):
        distribution = ep.dist.name if ep.dist is not None else "<unknown>"
        plugin = Plugin(kind, ep.name, ep.value, distribution)
        # The same distribution can be visible twice on sys.path (an editable install beside a wheel).
        if plugin not in claims.setdefault(ep.name, []):
            claims[ep.name].append(plugin)
    return {name: tuple(found) for name, found in sorted(claims.items())}


def names(kind: str) -> list[str]:
    """Registered short names of one kind, sorted."""
    return list(_claims(kind))


def lookup(kind: str, name: str) -> Plugin:
    """The plugin registered as ``name``, applying the clash policy; unknown names list the valid ones."""
    claims = _claims(kind).get(name)
    if not claims:
        valid = ", ".join(names(kind)) or "(none registered)"
        singular = kind.removesuffix("s")
        raise RadfordError(f"unknown {singular} {name!r}; registered {kind}: {valid} (or give a full class path)")
    builtins = [p for p in claims if p.builtin]
    if builtins:
        return builtins[0]
    if len(claims) > 1:
        owners = " and ".join(repr(p.distribution) for p in claims)
        examples = ", ".join(p.class_path for p in claims)
        raise RadfordError(
            f"{kind.removesuffix('s')} name {name!r} is claimed by both {owners}; "
            f"use the full class path instead ({examples})"
        )
    return claims[0]


def plugins(kind: str) -> list[Plugin]:
    """The winning plugin for every name of one kind (clashes between third parties are skipped)."""
    found = []
    for name in names(kind):
        try:
            found.append(lookup(kind, name))
        except RadfordError:
            continue
    return found


def clashes(kind: str) -> dict[str, tuple[Plugin, ...]]:
    """Names claimed by more than one distribution."""
    return {name: claims for name, claims in _claims(kind).items() if len(claims) > 1}


@cache
def _import(plugin: Plugin) -> Any:
    module_name, _, attr = plugin.target.partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
    except Exception as error:  # a plugin may fail in any way; the message says how
        detail = str(error).splitlines()[0] if str(error) else ""
        raise PluginLoadError(
            f"{plugin.kind.removesuffix('s')} {plugin.name!r} from distribution {plugin.distribution!r} "
            f"failed to load: {type(error).__name__}: {detail}"
        ) from error
    return obj


def load(kind: str, name: str) -> Any:
    """Import and return what ``name`` points at (a class, or a package for recipes)."""
    return lookup(kind, name).load()


def class_path(kind: str, name: str) -> str:
    """The import path for a short name, checking that the plugin loads; dotted paths pass through."""
    if "." in name:
        return name
    plugin = lookup(kind, name)
    plugin.load()
    return plugin.class_path


def refresh() -> None:
    """Forget what was discovered, for a process that installed a plugin after starting."""
    importlib.invalidate_caches()
    _claims.cache_clear()
    _import.cache_clear()
