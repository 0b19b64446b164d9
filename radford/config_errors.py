"""Turn jsonargparse's nested, multi-line parse errors into one line that names the key and the choices."""

from __future__ import annotations

import difflib
import importlib
import inspect
import re

_CLASS_PATH = re.compile(r"Problem with given class_path '([^']+)'")
_PARSER_KEY = re.compile(r'Parser key "([^"]+)"')
_NOT_ACCEPTED = re.compile(r"Option '([^']+)' is not accepted")
_EXPECTED = re.compile(r"Expected a <class '([^']+)'>\. Got value: (.*)")
_LITERAL = re.compile(r"Expected a typing\.Literal\[(.*)\]")
_SUBCOMMAND_KEY = re.compile(r"Subcommand '(\w+)' does not accept option '([^']+)'")
_UNRECOGNIZED = re.compile(r"unrecognized arguments: (--\S+)")
_SUBTYPES = re.compile(r"^Subtypes: \[(.*)\]$")
_NOT_A_SUBCLASS = re.compile(r"Not a valid subclass of (\w+)")
TOP_LEVEL_KEYS = ("seed_everything", "trainer", "model", "data", "optimizer", "lr_scheduler", "ckpt_path")


def _parameters(class_path: str) -> list[str]:
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
        signature = inspect.signature(cls.__init__)
    except (ImportError, AttributeError, ValueError, TypeError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in signature.parameters.values() if p.name != "self" and p.kind in kinds]


def _choices(bad: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(bad, valid, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}valid: {', '.join(valid)}" if valid else hint.rstrip()


def _trainer_keys() -> list[str]:
    return _parameters("lightning.pytorch.Trainer")


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
            return f"unknown option {key!r} for {class_path}; {_choices(match[1], _parameters(class_path))}"
        elif match := _EXPECTED.search(line):
            where = f" ({class_path})" if class_path else ""
            return f"{'.'.join(path)}: expected {match[1]}, got {match[2]!r}{where}"
        elif match := _LITERAL.search(line):
            literals += [value.strip().strip("'") for value in match[1].split(",")]
        elif line.startswith("Given value:") and literals:
            valid = ", ".join(dict.fromkeys(literals))
            return f"{'.'.join(path)}: got {line.removeprefix('Given value:').strip()!r}; valid: {valid}"
        elif line.startswith("Given value:") and subtypes and "Subclass types expect" not in lines:
            where = f" ({class_path})" if class_path else ""
            return f"{'.'.join(path)}: expected {subtypes}, got {line.removeprefix('Given value:').strip()!r}{where}"
        elif (match := _NOT_A_SUBCLASS.search(line)) and path:
            given = next((g.removeprefix("Given value:").strip() for g in lines if g.startswith("Given value:")), "")
            return (f"{'.'.join(path)}: expected a {match[1]}: a registered name or import path as class_path, "
                    f"with init_args; got {given!r}")
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
