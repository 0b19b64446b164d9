"""``radford new-plugin NAME``: write a plugin package, ``radford-NAME``, that installs with pip, passes its own
tests and trains with ``radford fit --recipe NAME``: the starting point for a new architecture.

The package is the template folder ``plugin_template/`` (shipped in the wheel) with its placeholders filled in:
``__NAME__`` (the plugin's name), ``__MODULE__`` (``radford_NAME``), ``__CLASS__`` (NAME in CamelCase) and
``__RADFORD_REQUIREMENT__`` (this radford's major version). A file's ``.tmpl`` suffix keeps the template from
being linted, tested or imported as radford's own code.

It writes ``radford-NAME`` into the working directory, or ``--dir``: unlike every other command's output, which goes
in a run folder (``radford.runs``), the package is source code the user keeps, edits and installs from there
(``pip install -e radford-NAME``), as ``cookiecutter`` and ``cargo new`` write theirs.
"""

from __future__ import annotations

import importlib.resources
import re
import shutil
import tempfile
from collections.abc import Sequence
from importlib.resources.abc import Traversable
from pathlib import Path

from radford import __version__, recipes, registry
from radford.cli import ArgumentParser
from radford.errors import RadfordError

NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
NAME_RULE = "lowercase letters and digits in words joined by single hyphens, starting with a letter (e.g. my-model)"
PREFIX = "radford-"
SUFFIX = ".tmpl"


def check_name(name: str) -> str:
    """The plugin's name if it is valid and free; else a RadfordError naming the rule it breaks."""
    if name.startswith(PREFIX):
        raise RadfordError(
            f"plugin name {name!r}: give NAME without the {PREFIX!r} prefix (the package is "
            f"named {PREFIX}NAME): radford new-plugin {name.removeprefix(PREFIX)}"
        )
    if not NAME_PATTERN.fullmatch(name):
        raise RadfordError(f"invalid plugin name {name!r}: use {NAME_RULE}")
    # The model, the data module and the recipe all register as NAME; a taken name would lose to its owner,
    # even to one that RADFORD_PLUGINS hides today.
    for kind in ("models", "data"):
        # registered() lists built-ins first, so the owner named is the one that wins the name.
        owner = next((plugin.distribution for plugin in registry.registered(kind) if plugin.name == name), None)
        if owner:
            raise RadfordError(
                f"plugin name {name!r} is taken: {owner} registers a {kind.removesuffix('s')} "
                "of that name; choose another"
            )
    for recipe in recipes.list_recipes():
        if recipe.name == name:
            raise RadfordError(
                f"plugin name {name!r} is taken: {recipe.distribution} has a recipe of that name; choose another"
            )
    return name


def placeholders(name: str) -> dict[str, str]:
    major = int(__version__.split(".")[0])
    return {
        "__NAME__": name,
        "__MODULE__": "radford_" + name.replace("-", "_"),
        "__CLASS__": "".join(word.capitalize() for word in name.split("-")),
        "__RADFORD_REQUIREMENT__": f"radford>={'.'.join(__version__.split('.')[:2])},<{major + 1}",
    }


def fill(text: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def render(template: Traversable, target: Path, values: dict[str, str]) -> None:
    """Write the template folder's files under ``target``, placeholders filled in, in paths and in text."""
    for entry in template.iterdir():
        path = target / fill(entry.name, values).removesuffix(SUFFIX)
        if entry.is_dir():
            path.mkdir()
            render(entry, path, values)
        elif entry.name.endswith(SUFFIX):
            path.write_text(fill(entry.read_text(encoding="utf-8"), values), encoding="utf-8")


def main(args: Sequence[str]) -> None:
    """Write a plugin package radford-NAME (model, data module, recipe, test, README) that installs and trains."""
    parser = ArgumentParser(prog="radford new-plugin", description=main.__doc__)
    parser.add_argument("name", help=f"the plugin's name: {NAME_RULE}")
    parser.add_argument(
        "--dir",
        default=".",
        help="the folder to write radford-NAME into (default: the working directory; source code, not a run's output)",
    )
    options = parser.parse_args(args)
    name = check_name(options.name)
    parent = Path(options.dir).expanduser()
    target = parent / f"{PREFIX}{name}"
    if target.exists():
        raise RadfordError(f"{target} already exists: radford new-plugin never overwrites; remove it or give --dir")
    parent.mkdir(parents=True, exist_ok=True)
    # Written in a hidden folder beside the target and moved at the end: a failure leaves no half-written package.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=parent))
    try:
        package = staging / target.name
        package.mkdir()  # unlike the temporary folder, with the user's usual permissions
        render(importlib.resources.files(__package__) / "plugin_template", package, placeholders(name))
        package.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(
        f"wrote {target}: a model, a data module, the recipe {name!r}, a test and a README. Next:\n"
        f"  pip install -e {target}\n"
        f"  python -m pytest {target / 'tests'}\n"
        f"  radford fit --recipe {name}"
    )
