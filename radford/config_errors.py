"""Turn jsonargparse's nested, multi-line parse errors into one line that names the key and the choices; and refuse,
before anything is built, values that no model or data module could take (``bad_values``)."""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Iterator, Mapping
from typing import Any

from radford.errors import RadfordError

_CLASS_PATH = re.compile(r"Problem with given class_path '([^']+)'")
_PARSER_KEY = re.compile(r'Parser key "([^"]+)"')
_NOT_ACCEPTED = re.compile(r"Option '([^']+)' is not accepted")
_NESTED_ARG = re.compile(r"NestedArg\(key='[^']*', val='?(.*?)'?\)")
_EXPECTED = re.compile(r"Expected a <class '([^']+)'>\. Got value: (.*)")
_LITERAL = re.compile(r"Expected a typing\.Literal\[(.*)\]")
_SUBCOMMAND_KEY = re.compile(r"Subcommand '(\w+)' does not accept option '([^']+)'")
_UNRECOGNIZED = re.compile(r"unrecognized arguments: (--\S+)")
_SUBTYPES = re.compile(r"^Subtypes: \[(.*)\]$")
_NOT_A_SUBCLASS = re.compile(r"Not a valid subclass of (\w+)")
_GIVEN_CLASS = re.compile(r"class_path='([^']+)'")
UNION = "Does not validate against any of the Union subtypes"
_NOT_NONE = "Expected a <class 'NoneType'>"  # the Optional half of a union: never the error worth showing
TOP_LEVEL_KEYS = ("seed_everything", "trainer", "model", "data", "optimizer", "lr_scheduler", "ckpt_path")


def import_class(class_path: str | None) -> type | None:
    """The class an import path names, or None where it does not import (the parser reports that)."""
    module_name, _, name = (class_path or "").rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError):
        return None
    return found if isinstance(found, type) else None


def parameters(class_path: str | None) -> list[str]:
    """The keyword arguments of a class's ``__init__``: its ``init_args``; empty where it does not import."""
    cls = import_class(class_path)
    try:
        signature = inspect.signature(cls.__init__) if cls is not None else None
    except (ValueError, TypeError):
        signature = None
    if signature is None:
        return []
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in signature.parameters.values() if p.name != "self" and p.kind in kinds]


def _given(line: str) -> str:
    """The value of jsonargparse's "Given value: ..." line, unwrapped from the NestedArg it shows for a value given as
    ``--model.init_args.NAME VALUE``."""
    given = line.removeprefix("Given value:").strip()
    nested = _NESTED_ARG.fullmatch(given)
    return nested[1] if nested else given


def _choices(bad: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(bad, valid, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}valid: {', '.join(valid)}" if valid else hint.rstrip()


def _trainer_keys() -> list[str]:
    return parameters("lightning.pytorch.Trainer")


def _union_error(lines: list[str]) -> str | None:
    """What a class itself said when no member of a union (``LightningModule | None``) took a value: a constructor's
    own message, or an import path that is no such class; None where the members only disagree on the type."""
    if UNION not in lines or "Errors:" not in lines:
        return None
    start = lines.index("Errors:") + 1
    for line in lines[start:]:
        if line.startswith("Given value"):
            return None
        if not line.startswith(
            ("Expected a", "Not a valid", "Problem with given", "Parser key", "Subtypes:", "Errors:", UNION)
        ):
            return line
    return None


def _nested(lines: list[str]) -> str | None:
    """Follow jsonargparse's nesting (``Parser key`` inside ``class_path`` inside ...) to the first leaf."""
    path: list[str] = []
    class_path = ""
    literals: list[str] = []
    subtypes = ""
    for line in lines:
        if match := _PARSER_KEY.search(line):
            path.append(match[1])
            subtypes = ""
        elif (match := _SUBTYPES.search(line)) and not subtypes:
            subtypes = " or ".join(t.removeprefix("<class '").removesuffix("'>") for t in match[1].split(", "))
        elif match := _CLASS_PATH.search(line):
            class_path = match[1]
            path.append("init_args")
        elif match := _NOT_ACCEPTED.search(line):
            key = ".".join([*path, match[1]])
            return f"unknown option {key!r} for {class_path}; {_choices(match[1], parameters(class_path))}"
        elif match := _EXPECTED.search(line):
            where = f" ({class_path})" if class_path else ""
            return f"{'.'.join(path)}: expected {match[1]}, got {match[2]!r}{where}"
        elif match := _LITERAL.search(line):
            literals += [value.strip().strip("'") for value in match[1].split(",")]
        elif line.startswith("Given value:") and literals:
            valid = ", ".join(dict.fromkeys(literals))
            return f"{'.'.join(path)}: got {_given(line)!r}; valid: {valid}"
        elif line.startswith("Given value:") and (error := _union_error(lines)):
            given = _GIVEN_CLASS.search(line)
            where = ".".join(path) or (given[1] if given else "")
            return f"{where}: {error}" if where else error
        elif line.startswith("Given value:") and subtypes and "Subclass types expect" not in lines:
            where = f" ({class_path})" if class_path else ""
            return f"{'.'.join(path)}: expected {subtypes}, got {_given(line)!r}{where}"
        elif (match := _NOT_A_SUBCLASS.search(line)) and path:
            given = next((g.removeprefix("Given value:").strip() for g in lines if g.startswith("Given value:")), "")
            return (
                f"{'.'.join(path)}: expected a {match[1]}: a registered name or import path as class_path, "
                f"with init_args; got {given!r}"
            )
        elif class_path and ("has no attribute" in line or "No module named" in line):
            return f"{'.'.join(path[:-1])}: cannot import class_path {class_path!r} ({line})"
    return None


def one_line(message: str) -> str:
    """The gist of a jsonargparse error: the full key, what was wrong, and the valid choices."""
    lines = [line.strip().removeprefix("- ") for line in message.strip().splitlines() if line.strip()]
    text = "\n".join(lines)
    if match := _SUBCOMMAND_KEY.search(text) or _UNRECOGNIZED.search(text):
        key = match[match.re.groups].removeprefix("--").split("=")[0]
        section, _, rest = key.partition(".")
        if section == "trainer" and rest:
            return f"unknown option {key!r}; {_choices(rest, _trainer_keys())}"
        if section not in TOP_LEVEL_KEYS:
            return f"unknown key {key!r}; {_choices(section, list(TOP_LEVEL_KEYS))}"
        return f"unknown option {key!r}"
    # Unknown shapes: the first two lines hold the key and the complaint; the rest is context.
    return _nested(lines) or " ".join(lines[:2])


# -- values no class could take ----------------------------------------------------------------------------------

# Arguments of models, data modules and tokenizers, by name: sizes, counts and rates that must be positive, and those
# that may also be 0. Checked by name, before anything is built, so that a bad value is refused in one line naming
# its key (and, in a recipe, its line) instead of failing deep inside torch at the first step.
POSITIVE = frozenset(
    {
        "learning_rate",
        "eps",
        "layer_norm_eps",
        "batch_size",
        "block_size",
        "context_length",
        "max_length",
        "image_size",
        "patch_size",
        "channels",
        "vocab_size",
        "n_layer",
        "n_head",
        "n_embd",
        "width",
        "latent_dim",
        "embed_dim",
        "embedding_size",
        "hidden_size",
        "vision_layers",
        "vision_width",
        "vision_heads",
        "vision_mlp_width",
        "text_layers",
        "text_width",
        "text_heads",
        "text_mlp_width",
        "samples_per_epoch",
        "test_stride",
        "colors",
    }
)
NON_NEGATIVE = frozenset(
    {
        "num_workers",
        "min_learning_rate",
        "weight_decay",
        "warmup_steps",
        "decay_steps",
        "dropout",
        "classifier_dropout",
        "lm_coef",
        "warmup_fraction",
        "val_fraction",
        "test_fraction",
        "shuffle_buffer",
    }
)
CLASS_SECTIONS = ("model", "data")  # the sections whose arguments POSITIVE and NON_NEGATIVE name


def _range_problem(name: str, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None  # a wrong type is the parser's to name
    if name in POSITIVE and not value > 0:
        return f"must be positive, got {value!r}"
    if name in NON_NEGATIVE and not value >= 0:
        return f"must be 0 or more, got {value!r}"
    return None


def _class_arguments(config: Mapping[str, Any], path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    for key, value in config.items():
        if isinstance(value, Mapping):
            yield from _class_arguments(value, (*path, key))
        elif (problem := _range_problem(str(key), value)) is not None:
            yield (*path, key), problem


def strategies() -> list[str]:
    """The strategy names Lightning's Trainer takes as a string."""
    from lightning.pytorch.strategies import StrategyRegistry

    return ["auto", *StrategyRegistry.available_strategies()]


def bad_values(config: Mapping[str, Any]) -> Iterator[tuple[tuple[str, ...], str]]:
    """(key path, what is wrong) for each value of a config (a recipe, or the parsed command line) that no class
    could take: a size, count or rate out of range (``POSITIVE``, ``NON_NEGATIVE``) among the model's and the data
    module's arguments, a ``trainer.strategy`` name Lightning does not know."""
    for section in CLASS_SECTIONS:
        if isinstance(config.get(section), Mapping):
            yield from _class_arguments(config[section], (section,))
    trainer = config.get("trainer")
    strategy = trainer.get("strategy") if isinstance(trainer, Mapping) else None
    if isinstance(strategy, str) and strategy.lower() not in (valid := strategies()):
        yield ("trainer", "strategy"), f"{strategy!r} is not a strategy; {_choices(strategy.lower(), valid)}"


def check_values(config: Mapping[str, Any]) -> None:
    """Refuse, in one line naming the key, the first of ``bad_values``."""
    bad = next(bad_values(config), None)
    if bad is not None:
        raise RadfordError(f"{'.'.join(bad[0])} {bad[1]}")
