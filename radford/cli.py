"""The ``radford`` command: LightningCLI's subcommands (``radford.lightning_cli``) and radford's own commands
(``radford.commands``), each imported only when it runs. A ``RadfordError`` ends as one line on stderr and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import textwrap
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import NoReturn

from radford import __version__
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


# What each training command does, and three examples of it, for ``radford COMMAND --help``.
LIGHTNING_HELP = {
    "fit": (
        "Train a model from a recipe; each fit writes a fresh run folder, ROOT/version_N.",
        [
            "radford fit --recipe gpt2-tiny --trainer.max_steps 20",
            "radford fit --recipe gpt2 --recipe size/gpt2-medium --recipe strategy/ddp --trainer.devices 8",
            "radford fit --recipe gpt2-tiny --ckpt_path last          # resume the newest gpt2-tiny run",
        ],
    ),
    "validate": (
        "Evaluate a checkpoint on the recipe's validation data; results go beside the checkpoint's run.",
        [
            "radford validate --recipe gpt2-tiny --ckpt_path runs/gpt2-tiny/latest/checkpoints/last.ckpt",
            "radford validate --recipe gpt2-tiny --ckpt_path last     # the newest checkpoint under runs/gpt2-tiny",
            "radford validate --recipe clip-tiny --ckpt_path last --data.init_args.batch_size 32",
        ],
    ),
    "test": (
        "Evaluate a checkpoint, or pretrained weights, on the recipe's test data.",
        [
            "radford test --recipe finetune-demo --ckpt_path last",
            "radford test --recipe gpt2-zeroshot --model.init_args.pretrained models/gpt2 \\\n"
            "      --data.init_args.tokenizer.init_args.path models/gpt2 --data.init_args.sources '[book.txt]'",
            "radford test --recipe mlstm-tiny --ckpt_path runs/mlstm-tiny/latest/checkpoints/last.ckpt",
        ],
    ),
    "predict": (
        "Run a checkpoint on the recipe's prediction inputs (WritePredictions writes them in its folder).",
        [
            "radford predict --recipe finetune-demo --ckpt_path last",
            "radford predict --recipe finetune-demo --ckpt_path last --data.init_args.predict my.jsonl",
            "radford predict --recipe finetune-demo --ckpt_path last --trainer.callbacks.init_args.path out.jsonl",
        ],
    ),
}


def _recipe_lines(names: Sequence[str]) -> list[str]:
    """The recipes, whole ones then the fragments that compose with them, wrapped."""
    wrap = textwrap.TextWrapper(116, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False)
    return [
        *wrap.wrap(", ".join(name for name in names if "/" not in name)),
        *wrap.wrap("fragments: " + ", ".join(name for name in names if "/" in name)),
    ]


def usage(recipes: Sequence[str]) -> str:
    """``radford --help``: the commands and the recipes."""
    lines = [
        "usage: radford COMMAND [options]          (radford COMMAND --help: its options; radford --version)",
        "",
        "training (LightningCLI):",
    ]
    lines += [f"  {name:<10} {LIGHTNING_HELP[name][0]}" for name in LIGHTNING_COMMANDS]
    lines += ["", "other commands:"]
    lines += [f"  {name:<10} {command(name).__doc__.splitlines()[0]}" for name in COMMANDS]
    lines += [
        "",
        "recipes (radford recipes says what each is; --recipe also takes a YAML file):",
        *_recipe_lines(recipes),
    ]
    return "\n".join(lines)


def lightning_usage(name: str, recipes: Sequence[str]) -> str:
    """``radford fit --help``: the recipe first, then the options radford adds, recipes and examples; every option
    of a recipe's classes and of the trainer is behind ``--help-all``."""
    summary, examples = LIGHTNING_HELP[name]
    lines = [
        f"usage: radford {name} --recipe NAME_OR_YAML [--recipe FRAGMENT ...] [--section.key VALUE ...]",
        "",
        summary,
        "",
        "  --recipe NAME_OR_YAML       a recipe below, or any YAML file (a LightningCLI config); several",
        "                              compose, later values winning",
        "  --section.key VALUE         any value: --model.init_args.n_layer 6, --trainer.max_steps 100",
        "  --ckpt_path PATH|last       a checkpoint; last: the newest of any fit under ROOT",
        "  --trainer.default_root_dir ROOT",
        "                              where runs go (default runs/<first recipe>)",
        "  --model.help NAME           a model's options (--data.help NAME: a data module's): --model.help gpt2",
        "  --help-all                  Lightning's help: every trainer option, a recipe's values as defaults",
        "",
        "recipes (radford recipes says what each is):",
        *_recipe_lines(recipes),
        "",
        "examples:",
    ]
    lines += [f"  {example}" for example in examples]
    return "\n".join(lines)


def version() -> str:
    """radford's version and those of the two libraries it is built on, read without importing them."""

    def installed(distribution: str) -> str:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            return "not installed"

    return f"radford {__version__} (torch {installed('torch')}, lightning {installed('lightning')})"


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    name = args[0] if args else ""
    try:
        if name in ("", "-h", "--help") or (name in LIGHTNING_COMMANDS and {"-h", "--help"} & set(args)):
            from radford import recipes

            names = [recipe.name for recipe in recipes.list_recipes()]
            print(lightning_usage(name, names) if name in LIGHTNING_COMMANDS else usage(names))
        elif name in ("-V", "--version"):
            print(version())
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
    except KeyboardInterrupt:  # Ctrl-C outside a training loop (which handles its own): the shell's status, quietly
        print("\nradford: interrupted", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)


if __name__ == "__main__":
    main()
