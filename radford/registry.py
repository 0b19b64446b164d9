"""Plugins through Python entry points: models, data modules, tokenizers and recipe folders.

radford's own models register in its ``pyproject.toml`` exactly as a third-party package would. Listing
reads entry-point metadata only; a plugin's code is imported the first time a recipe names it, so a
broken plugin costs nothing until then. A plugin that fails to import is remembered with its
distribution and error, shown as broken by ``radford plugins --check``, and raised as one clear line only
when it is asked for. Built-ins win a name clash; two third parties claiming one name is an error that names
both. Loading is idempotent and does no device work (DDP and FSDP start new processes that load again).

``RADFORD_PLUGINS`` chooses the third-party distributions whose plugins load, as vLLM's ``VLLM_PLUGINS`` and
pytest's ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` do: unset, all of them; a comma-separated list, those; an empty
string, none. radford's built-ins always load. It is read on every lookup, so a test can set it in-process.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from radford.errors import RadfordError

GROUPS = {
    "models": "radford.models",
    "data": "radford.data",
    "tokenizers": "radford.tokenizers",
    "recipes": "radford.recipes",
    "formats": "radford.formats",
}
BUILTIN_DISTRIBUTION = "radford"
SWITCH = "RADFORD_PLUGINS"


class PluginLoadError(RadfordError):
    """A registered plugin whose code fails to import."""


def _canonical(distribution: str) -> str:
    """A distribution name as pip compares them (PEP 503): ``Radford_IGPT`` and ``radford-igpt`` are one."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


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
    def enabled(self) -> bool:
        """Whether ``RADFORD_PLUGINS`` lets this plugin load (built-ins always do)."""
        allowed = enabled_distributions()
        return self.builtin or allowed is None or _canonical(self.distribution) in allowed

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
def registered(kind: str) -> tuple[Plugin, ...]:
    """Every entry point of one kind, enabled or not, sorted by name (built-ins first): metadata only, no import."""
    found: list[Plugin] = []
    for ep in importlib.metadata.entry_points(group=_check_kind(kind)):
        distribution = ep.dist.name if ep.dist is not None else "<unknown>"
        plugin = Plugin(kind, ep.name, ep.value, distribution)
        # The same distribution can be visible twice on sys.path (an editable install beside a wheel).
        if plugin not in found:
            found.append(plugin)
    return tuple(sorted(found, key=lambda p: (p.name, not p.builtin, p.distribution)))


def _distributions(plugins: Iterable[Plugin]) -> str:
    return ", ".join(sorted({p.distribution for p in plugins})) or "(none)"


def enabled_distributions() -> frozenset[str] | None:
    """The third-party distributions ``RADFORD_PLUGINS`` enables (PEP 503 names), or None when it is unset."""
    value = os.environ.get(SWITCH)
    if value is None:
        return None
    wanted = {_canonical(name.strip()) for name in value.split(",") if name.strip()}
    installed = [p for kind in GROUPS for p in registered(kind) if not p.builtin]
    unknown = sorted(wanted - {_canonical(p.distribution) for p in installed} - {BUILTIN_DISTRIBUTION})
    if unknown:
        raise RadfordError(
            f"{SWITCH}={value!r} names {', '.join(map(repr, unknown))}, which registers no radford "
            f"plugin; installed plugin distributions: {_distributions(installed)} (comma-separated; "
            "an empty value loads none, unset loads all)"
        )
    return frozenset(wanted)


def _claims(kind: str) -> dict[str, tuple[Plugin, ...]]:
    """Every enabled distribution's claim on every name of one kind."""
    claims: dict[str, list[Plugin]] = {}
    for plugin in registered(kind):
        if plugin.enabled:
            claims.setdefault(plugin.name, []).append(plugin)
    return {name: tuple(found) for name, found in claims.items()}


def names(kind: str) -> list[str]:
    """Registered short names of one kind that ``RADFORD_PLUGINS`` enables, sorted."""
    return list(_claims(kind))


def lookup(kind: str, name: str) -> Plugin:
    """The plugin registered as ``name``, applying the clash policy; unknown names list the valid ones."""
    claims = _claims(kind).get(name)
    singular = kind.removesuffix("s")
    if not claims:
        disabled = [p for p in registered(kind) if p.name == name]
        if disabled:
            raise RadfordError(
                f"{singular} {name!r} comes from {_distributions(disabled)}, which {SWITCH}="
                f"{os.environ[SWITCH]!r} does not enable; add it to {SWITCH} or unset {SWITCH}"
            )
        valid = ", ".join(names(kind)) or "(none registered)"
        raise RadfordError(f"unknown {singular} {name!r}; registered {kind}: {valid} (or give a full class path)")
    builtins = [p for p in claims if p.builtin]
    if builtins:
        return builtins[0]
    if len(claims) > 1:
        owners = " and ".join(repr(p.distribution) for p in claims)
        examples = ", ".join(p.class_path for p in claims)
        raise RadfordError(
            f"{singular} name {name!r} is claimed by both {owners}; use the full class path instead ({examples})"
        )
    return claims[0]


def plugins(kind: str) -> list[Plugin]:
    """The winning enabled plugin for every name of one kind (clashes between third parties are skipped)."""
    found = []
    for name in names(kind):
        try:
            found.append(lookup(kind, name))
        except RadfordError:
            continue
    return found


def clashes(kind: str) -> dict[str, tuple[Plugin, ...]]:
    """Names that ``lookup`` refuses: claimed by several enabled third parties and by no built-in."""
    return {
        name: claims for name, claims in _claims(kind).items() if len(claims) > 1 and not any(p.builtin for p in claims)
    }


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


def class_path(kind: str, name: str) -> str:
    """The import path for a short name, checking that the plugin loads; dotted paths pass through."""
    if "." in name:
        return name
    plugin = lookup(kind, name)
    plugin.load()
    return plugin.class_path
