"""The ``radford`` command: LightningCLI's subcommands (``radford.lightning_cli``) and radford's own commands
(``radford.commands``), each imported only when it runs. A ``RadfordError`` ends as one line on stderr and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from radford.errors import RadfordError


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are RadfordErrors, which ``main`` prints as one line (argparse adds a usage line)."""

    def error(self, message: str) -> NoReturn:
        raise RadfordError(f"{self.prog}: {message}")


LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")

# name: "module:function"; a command's module is imported only when it runs (or for its summary in --help).
COMMANDS = {
    "plugins": "radford.commands.plugins:main",
    "recipes": "radford.commands.recipes:main",
    "convert": "radford.commands.convert:main",
    "generate": "radford.commands.generate:main",
    "sample": "radford.commands.sample:main",
    "probe": "radford.commands.probe:main",
    "zeroshot": "radford.commands.zeroshot:main",
    "shards": "radford.commands.shards:main",
    "new-plugin": "radford.commands.new_plugin:main",
}


def command(name: str) -> Callable[[Sequence[str]], None]:
    module, _, function = COMMANDS[name].partition(":")
    return getattr(importlib.import_module(module), function)


def usage() -> str:
    lines = ["usage: radford COMMAND [options]", "", "training (LightningCLI; add --help for every option):"]
    lines += [f"  {name:<10} --recipe NAME_OR_YAML [--recipe FRAGMENT ...] [--section.key value ...]"
              for name in LIGHTNING_COMMANDS]
    lines += ["", "other commands:"]
    lines += [f"  {name:<10} {command(name).__doc__.splitlines()[0]}" for name in COMMANDS]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    name = args[0] if args else ""
    try:
        if name in ("", "-h", "--help"):
            print(usage())
        elif name in COMMANDS:
            command(name)(args[1:])
        elif name in LIGHTNING_COMMANDS:
            from radford.lightning_cli import run_lightning

            run_lightning(args)
        else:
            valid = ", ".join((*LIGHTNING_COMMANDS, *COMMANDS))
            raise RadfordError(f"unknown command {name!r}; valid: {valid}")
    except RadfordError as error:
        print(f"radford: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
