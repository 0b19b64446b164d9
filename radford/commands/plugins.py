"""``radford plugins``: every registered plugin, read from entry-point metadata; ``--check`` imports each."""

from __future__ import annotations

from collections.abc import Sequence

from radford import registry
from radford.cli import ArgumentParser


def state(plugin: registry.Plugin, check: bool) -> str:
    """Why a plugin is or is not used; importing it (``check``) is the only way to know that it loads."""
    if not plugin.enabled:
        return f"disabled by {registry.SWITCH}"
    clash = registry.clashes(plugin.kind).get(plugin.name)
    if clash:
        others = " and ".join(p.distribution for p in clash if p != plugin)
        return f"CLASH with {others}: use the full class path"
    winner = registry.lookup(plugin.kind, plugin.name)
    if winner != plugin:
        return f"shadowed by {winner.distribution}'s {plugin.name}: use the full class path"
    if not check:
        return ""
    try:
        plugin.load()
    except registry.PluginLoadError as error:
        return f"BROKEN: {error}"
    return "ok"


def main(args: Sequence[str]) -> None:
    """List every registered plugin and its distribution without importing it; --check shows whether each loads."""
    parser = ArgumentParser(prog="radford plugins", description=main.__doc__)
    parser.add_argument("--check", action="store_true", help="import every enabled plugin and show ok or BROKEN")
    options = parser.parse_args(args)
    registry.enabled_distributions()  # a bad RADFORD_PLUGINS is one error line, before any listing
    for kind in registry.GROUPS:
        print(f"{kind}:")
        for plugin in registry.registered(kind):
            line = f"  {plugin.name:<18} {plugin.distribution:<18} {plugin.target:<40} {state(plugin, options.check)}"
            print(line.rstrip())
