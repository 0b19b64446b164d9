"""Bad input as users give it, kept as a matrix: every bundled recipe broken in each way a hand-edited YAML file
breaks, and bad files and arguments for every command.

Each case runs in this process through ``radford.cli.main`` (a subprocess costs seconds; ``tests/test_cli.py`` checks
the console script) in an empty working folder, and must end with exit status 2, at most 3 lines on stderr that name
the bad value, no traceback, and nothing written: neither in the working folder nor beside the inputs. Most cases fail
before LightningCLI builds its parser (recipes are read and checked first, in ``radford.recipes.load``); the few that
need the parser (a second each) are sampled, so that the whole file stays under a minute.

A case that fails today is marked ``xfail(strict=True)`` with the file and the fix it waits for.
"""

from __future__ import annotations

import io
import json
import pickle
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from PIL import Image

import radford
from radford import recipes
from radford.checkpoints import Weights, write_checkpoint
from radford.cli import main
from radford.config_errors import NON_NEGATIVE, POSITIVE, one_line
from radford.data.images import ImageData
from radford.data.lambada import LambadaData
from radford.data.pairs import PairData
from radford.data.tasks import TaskData
from radford.data.text import TextData
from radford.errors import RadfordError
from radford.models.dcgan import DCGAN
from radford.models.gpt import GPT
from radford.tokenizers import Char
from tests.helpers import ROOT

BUNDLED = ROOT / "recipes"
RECIPES = sorted(recipe.path for recipe in recipes.list_recipes() if recipe.distribution == "radford")
TOP_LEVEL = [path for path in RECIPES if path.parent == BUNDLED]  # runnable alone; the others are fragments
ART = "{art}"  # stands for the folder of bad files in a case's arguments
SAMPLE = 6  # every sixth key line of a recipe given twice; six of its values out of range
PARSED_EVERY = 4  # every fourth whole recipe broken in the ways only the parser sees (a second a case)
TOKENIZER_TEXT = "abcdefgh ijklmnop\n"  # all the tiny GPT's tokenizer knows
READ_ONLY = Path("/sys")  # unwritable even for root; a test that needs it skips where it is writable


@dataclass(frozen=True)
class Case:
    """``radford ARGS`` in an empty folder holding ``files``; stderr must name each of ``names``."""

    args: tuple[str, ...]
    names: tuple[str, ...]
    files: dict[str, bytes] = field(default_factory=dict)
    code: int = 2


def param(case_id: str, case: Case, waits_for: str | None = None) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=waits_for)] if waits_for else []
    return pytest.param(case, id=case_id, marks=marks)


# -- the recipe matrix ------------------------------------------------------------------------------------------

KEY_LINE = re.compile(r"^(\s*)([A-Za-z_][\w-]*):(?:\s|$)")
RANGED = sorted(POSITIVE | NON_NEGATIVE)
RANGED_VALUE = re.compile(rf"(?<![\w.])({'|'.join(RANGED)}):\s*(-?[\d.]+(?:e-?\d+)?)(?=[\s,}}]|$)")
SHORT_CLASS = re.compile(r"\b(class_path|tokenizer):\s*([A-Za-z][\w-]*)(?=[\s,}]|$)")


def fit(recipe: bytes | str) -> Case:
    """``radford fit --recipe recipe.yaml`` with ``recipe`` as the file; ``names`` filled in by the caller. With
    ``--print_config``, a mutation that breaks nothing prints the config and exits 0 (the case fails) instead of
    training a paper-sized model."""
    content = recipe.encode() if isinstance(recipe, str) else recipe
    return Case(("fit", "--recipe", "recipe.yaml", "--print_config"), (), {"recipe.yaml": content})


def code_of(line: str) -> str:
    """A recipe line without its comment: mutations touch YAML, not the prose beside it."""
    return "" if line.lstrip().startswith("#") else line.split(" #")[0]


def named(case: Case, *names: str) -> Case:
    return Case(case.args, names, case.files, case.code)


def duplicated_keys(lines: list[str]) -> Iterator[tuple[str, Case]]:
    """Keys given twice: every ``SAMPLE``-th key line repeated (block style), and the first pair of the first flow
    mapping repeated (flow style)."""
    keys = [(number, match) for number, line in enumerate(lines, 1) if (match := KEY_LINE.match(code_of(line)))]
    for number, match in keys[::SAMPLE]:
        text = "".join([*lines[:number], lines[number - 1], *lines[number:]])
        yield (
            f"dup-{match[2]}@{number}",
            named(fit(text), f"key {match[2]!r} is given twice", f"lines {number} and {number + 1}"),
        )
    flows = [
        (number, match)
        for number, line in enumerate(lines, 1)
        if (match := re.search(r"\{(\w+): ([^,}]+)", code_of(line)))
    ]
    for number, match in flows[:1]:
        line = lines[number - 1].replace(match[0], f"{match[0]}, {match[1]}: {match[2]}", 1)
        yield (
            f"dup-flow-{match[1]}@{number}",
            named(
                fit("".join([*lines[: number - 1], line, *lines[number:]])),
                f"key {match[1]!r} is given twice",
                f"lines {number} and {number}",
            ),
        )


def out_of_range(lines: list[str]) -> Iterator[tuple[str, Case]]:
    """The model's and the data module's sizes, counts and rates negative (the first ``SAMPLE`` kinds in the file, at
    their first occurrence), and the first size 0."""
    section, seen, zero = "", set(), True
    for number, line in enumerate(lines, 1):
        section = match[1] if (match := re.match(r"^(\w+):", line)) else section
        if section not in ("model", "data"):
            continue
        for match in RANGED_VALUE.finditer(code_of(line)):
            bads = ["-1"] if match[1] not in seen and len(seen) < SAMPLE else []
            if zero and match[1] in POSITIVE:
                bads, zero = [*bads, "0"], False
            seen.add(match[1])
            for bad in bads:
                text = "".join(
                    [*lines[: number - 1], line[: match.start(2)] + bad + line[match.end(2) :], *lines[number:]]
                )
                yield (
                    f"{match[1]}={bad}@{number}",
                    named(fit(text), f"{match[1]} must be", f"got {bad}", f"line {number}"),
                )


def not_utf8(text: str) -> Iterator[tuple[str, Case]]:
    """Latin-1 in the first line, a stray byte in the middle, the whole file in UTF-16."""
    first, _, rest = text.partition("\n")
    latin = first.encode() + " caf\xe9".encode("latin-1") + b"\n" + rest.encode()
    yield "latin-1", named(fit(latin), "not UTF-8", f"byte {len(first.encode()) + 4}")
    lines = text.encode().splitlines(keepends=True)
    middle = sum(map(len, lines[: len(lines) // 2]))
    yield (
        "stray-byte",
        named(fit(text.encode()[:middle] + b"\xff" + text.encode()[middle:]), "not UTF-8", f"byte {middle}"),
    )


def malformed(lines: list[str]) -> Iterator[tuple[str, Case]]:
    """An unclosed list, a tab for indentation, a second colon; and a top level that is not a mapping."""
    yield "unclosed-list", named(fit("".join(lines) + "\nextra: [1, 2\n"), "malformed YAML")
    indented = next((n for n, line in enumerate(lines, 1) if re.match(r"^ +\w", code_of(line))), None)
    if indented is not None:
        tabbed = [*lines[: indented - 1], "\t" + lines[indented - 1].lstrip(" "), *lines[indented:]]
        yield "tab", named(fit("".join(tabbed)), "malformed YAML", f"line {indented}")
    yield (
        "a-list",
        named(fit("- " + "- ".join(line for line in lines if KEY_LINE.match(code_of(line)))), "must be a mapping"),
    )


def unknown_names(lines: list[str], config: dict[str, Any]) -> Iterator[tuple[str, Case]]:
    """Each registered short class name misspelt; a strategy and a base recipe that do not exist; a base that is no
    name."""
    for number, line in enumerate(lines, 1):
        for match in SHORT_CLASS.finditer(code_of(line)):
            text = "".join(
                [*lines[: number - 1], line[: match.start(2)] + "nosuch" + line[match.end(2) :], *lines[number:]]
            )
            yield f"class-{match[2]}@{number}", named(fit(text), "'nosuch'")
    trainer = config.get("trainer") or {}
    yield (
        "strategy",
        named(
            fit(yaml.safe_dump({**config, "trainer": {**trainer, "strategy": "fooo"}})),
            "trainer.strategy",
            "'fooo' is not a strategy",
        ),
    )
    yield "base", named(fit(yaml.safe_dump({**config, "base": "no-such-recipe"})), "'no-such-recipe'")


def needs_the_parser(config: dict[str, Any]) -> Iterator[tuple[str, Case]]:
    """What only LightningCLI's parser finds (each case costs a parser, so a sample of recipes has them): a value of
    the wrong type, an unknown key and an unknown class path for the model, an unknown precision."""
    model = config.get("model") or {}
    arguments = model.get("init_args") or {}
    key, value = next(((k, v) for k, v in arguments.items() if isinstance(v, (int, float, str))), ("n_layer", 1))
    changes = {
        f"type-{key}": (
            {"model": {**model, "init_args": {**arguments, key: "abc" if isinstance(value, (int, float)) else [1, 2]}}},
            (f"model.init_args.{key}",),
        ),
        "key-n_layr": ({"model": {**model, "init_args": {**arguments, "n_layr": 3}}}, ("'model.init_args.n_layr'",)),
        "class-path": ({"model": {**model, "class_path": "radford.models.nope.X"}}, ("radford.models.nope.X",)),
        "precision": ({"trainer": {**(config.get("trainer") or {}), "precision": "17"}}, ("trainer.precision", "'17'")),
    }
    for case_id, (change, names) in changes.items():
        yield case_id, named(fit(yaml.safe_dump({**config, **change})), *names)


def recipe_cases() -> list[Any]:
    cases = []
    for path in RECIPES:
        name = path.relative_to(BUNDLED).with_suffix("").as_posix()
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True)
        config = yaml.safe_load(text) or {}
        generated = [
            *duplicated_keys(lines),
            *out_of_range(lines),
            *not_utf8(text),
            *malformed(lines),
            *unknown_names(lines, config),
        ]
        if path in TOP_LEVEL[::PARSED_EVERY]:
            generated += needs_the_parser(config)
        cases += [param(f"{name}:{case_id}", case) for case_id, case in generated]
    return cases


RECIPE_CASES = recipe_cases()


# -- bad files --------------------------------------------------------------------------------------------------


class Runs:
    """A pickled object that would write a file when unpickled: proof that pickled code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.write_text, (self.marker, "pickled code ran")


def png(colour: tuple[int, int, int] = (200, 10, 10)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format="PNG")
    return buffer.getvalue()


HF_CONFIG = {
    "model_type": "gpt2",
    "architectures": ["GPT2LMHeadModel"],
    "vocab_size": 16,
    "n_positions": 16,
    "n_embd": 8,
    "n_layer": 1,
    "n_head": 1,
}


def saved(value: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


HF_FOLDERS: dict[str, dict[str, bytes]] = {
    "hf_no_config": {"model.safetensors": b"junk"},
    "hf_bad_json": {"config.json": b"{"},
    "hf_list_json": {"config.json": b"[]"},
    "hf_latin1_json": {"config.json": b'{"model_type": "gpt2", "name": "caf\xe9"}'},
    "hf_no_n_layer": {"config.json": json.dumps({k: v for k, v in HF_CONFIG.items() if k != "n_layer"}).encode()},
    "hf_bert": {"config.json": json.dumps({**HF_CONFIG, "model_type": "bert", "architectures": ["Bert"]}).encode()},
    "hf_no_weights": {"config.json": json.dumps(HF_CONFIG).encode()},
    "hf_bin_list": {"config.json": json.dumps(HF_CONFIG).encode(), "pytorch_model.bin": saved([torch.zeros(2)])},
    "hf_bin_number": {
        "config.json": json.dumps(HF_CONFIG).encode(),
        "pytorch_model.bin": saved({"transformer.wte.weight": 3}),
    },
    "hf_junk_safetensors": {
        "config.json": json.dumps(HF_CONFIG).encode(),
        "model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}junk",
    },
}


@pytest.fixture(scope="module")
def art(tmp_path_factory) -> Path:
    """Bad files of every kind a user hands radford, and two good checkpoints of the wrong kind for most commands."""
    root = tmp_path_factory.mktemp("bad-files")
    tokenizer = Char()
    tokenizer.train([TOKENIZER_TEXT])
    torch.manual_seed(0)
    gpt = GPT(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=1, n_head=1, n_embd=8)
    write_checkpoint(Weights(GPT, dict(gpt.hparams), gpt.state_dict(), tokenizer), root / "gpt.ckpt")
    dcgan = DCGAN(image_size=32, channels=1, width=8, grid_size=0)
    write_checkpoint(Weights(DCGAN, dict(dcgan.hparams), dcgan.state_dict(), None), root / "dcgan.ckpt")
    (root / "empty.ckpt").write_bytes(b"")
    (root / "junk.ckpt").write_bytes(bytes(range(256)) * 4)
    (root / "text.ckpt").write_text("model: gpt2\n")
    (root / "truncated.ckpt").write_bytes((root / "gpt.ckpt").read_bytes()[:3000])
    torch.save({"state_dict": {}}, root / "legacy.ckpt", _use_new_zipfile_serialization=False)
    torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 0}, root / "plain.ckpt")
    torch.save([1, 2, 3], root / "list.ckpt")
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": Runs(root / "ran")}, root / "reduce.ckpt")
    (root / "raw_pickle.ckpt").write_bytes(pickle.dumps(Runs(root / "ran")))
    (root / "dir.ckpt").mkdir()
    (root / "empty_folder").mkdir()
    for folder, files in HF_FOLDERS.items():
        (root / folder).mkdir()
        for name, content in files.items():
            (root / folder / name).write_bytes(content)
    (root / "hf_foreign_global").mkdir()
    (root / "hf_foreign_global" / "config.json").write_text(json.dumps(HF_CONFIG))
    torch.save({"transformer.wte.weight": Runs(root / "ran")}, root / "hf_foreign_global" / "pytorch_model.bin")
    (root / "image.png").write_bytes(png())
    (root / "labelled.jsonl").write_text(
        "".join(
            json.dumps({"text": TOKENIZER_TEXT[i % 8 : i % 8 + 4], "label": ["pos", "neg"][i % 2]}) + "\n"
            for i in range(40)
        )
    )
    (root / "one_class.jsonl").write_text(json.dumps({"text": "abc", "label": "pos"}) + "\n")
    (root / "latin1.txt").write_bytes(b"caf\xe9\nbar\n")
    (root / "one_class.txt").write_text("cat\n")
    (root / "pairs_header_only.csv").write_text("filepath,caption\n")
    (root / "pairs_no_columns.csv").write_text("path,text\nimage.png,a red square\n")
    (root / "pairs_missing_image.csv").write_text("filepath,caption\nnope.png,a cat\n")
    (root / "pairs_empty.csv").write_text("")
    (root / "pairs_short_row.csv").write_text("filepath,caption\nimage.png,a red square\nimage.png\n")
    (root / "pairs_not_image.csv").write_text("filepath,caption\nimage.png,a red square\nlabelled.jsonl,text\n")
    (root / "pairs_latin1.csv").write_bytes(b"filepath,caption\nimage.png,caf\xe9\n")
    for folder in ("uncaptioned", "captioned"):
        (root / folder).mkdir()
        (root / folder / "a.png").write_bytes(png())
    (root / "captioned" / "a.txt").write_text("a red square")
    return root


BAD_FILES = [
    "missing.ckpt",
    "empty.ckpt",
    "junk.ckpt",
    "text.ckpt",
    "truncated.ckpt",
    "legacy.ckpt",
    "plain.ckpt",
    "list.ckpt",
    "reduce.ckpt",
    "raw_pickle.ckpt",
    "dir.ckpt",
    "empty_folder",
    *HF_FOLDERS,
]
CHECKPOINT_COMMANDS = {
    "generate": ("generate", "--checkpoint", "{path}", "--prompt", "abc"),
    "convert": ("convert", "{path}", "converted"),
    "probe": ("probe", "--checkpoint", "{path}", "--data", f"{ART}/labelled.jsonl", "--output_dir", "probe"),
    "zeroshot": ("zeroshot", "--checkpoint", "{path}", "--images", f"{ART}/image.png", "--classes", "a", "b"),
    "sample": ("sample", "--checkpoint", "{path}", "--out", "grid.png"),
}
WRONG_KIND = {  # (checkpoint, command): what the line names
    ("dcgan.ckpt", "generate"): "dcgan.ckpt",
    ("dcgan.ckpt", "convert"): "DCGAN",
    ("dcgan.ckpt", "probe"): "DCGAN",
    ("dcgan.ckpt", "zeroshot"): "DCGAN",
    ("gpt.ckpt", "zeroshot"): "GPT",
    ("gpt.ckpt", "sample"): "GPT",
}


def checkpoint_cases() -> list[Any]:
    cases = []
    for command, template in CHECKPOINT_COMMANDS.items():
        for bad in BAD_FILES:
            args = tuple(arg.replace("{path}", f"{ART}/{bad}") for arg in template)
            cases.append(param(f"{command}:{bad}", Case(args, (bad,))))
        cases.append(
            param(
                f"{command}:hf_foreign_global",
                Case(
                    tuple(arg.replace("{path}", f"{ART}/hf_foreign_global") for arg in template), ("hf_foreign_global",)
                ),
            )
        )
    for (checkpoint, command), name in WRONG_KIND.items():
        args = tuple(arg.replace("{path}", f"{ART}/{checkpoint}") for arg in CHECKPOINT_COMMANDS[command])
        cases.append(param(f"{command}:{checkpoint}", Case(args, (name,))))
    return cases


def lightning_cases() -> list[Any]:
    """radford fit/validate/test/predict: each case builds LightningCLI's parser (about a second), so a sample of
    checkpoints and arguments, on the cheapest recipe (DCGAN on the embedded digits: nothing to tokenize)."""
    run = ("--recipe", "dcgan-digits", "--trainer.fast_dev_run", "1")
    resume = [
        ("fit", "missing.ckpt"),
        ("fit", "reduce.ckpt"),
        ("fit", "dir.ckpt"),
        ("fit", "gpt.ckpt"),
        ("validate", "truncated.ckpt"),
        ("test", "list.ckpt"),
        ("predict", "plain.ckpt"),
    ]
    cases = [
        param(f"{command}:--ckpt_path {bad}", Case((command, *run, "--ckpt_path", f"{ART}/{bad}"), (bad,)))
        for command, bad in resume
    ]
    arguments = [
        (("--trainer.max_steps", "abc"), ("trainer.max_steps", "'abc'"), None),
        (("--trainer.accelerator", "gpu"), ("gpu",), None),
        (("--trainer.strategy", "fsdp"), ("fsdp",), None),
        (("--data.init_args.num_workers", "-1"), ("num_workers", "-1"), None),
        (("--model.init_args.learning_rate", "-1"), ("learning_rate", "-1"), None),
    ]
    cases += [
        param(f"fit:{' '.join(extra)}", Case(("fit", *run, *extra), names), waits_for)
        for extra, names, waits_for in arguments
    ]
    return [
        *cases,
        param(
            "fit:gpt1 n_layer abc",
            Case(
                ("fit", "--recipe", "gpt1", "--model.init_args.n_layer", "abc", "--print_config"), ("n_layer", "'abc'")
            ),
        ),
        param("fit:--recipe no-such", Case(("fit", "--recipe", "no-such-recipe"), ("'no-such-recipe'",))),
        param("fit:--config missing", Case(("fit", "--config", "missing.yaml"), ("missing.yaml",))),
        param("fit:--recipe latin-1", Case(("fit", "--recipe", f"{ART}/latin1.txt"), ("latin1.txt", "not UTF-8"))),
    ]


def command_cases() -> list[Any]:
    """Arguments of radford's own commands, each wrong in one way."""
    gpt, dcgan = f"{ART}/gpt.ckpt", f"{ART}/dcgan.ckpt"
    generate = ("generate", "--checkpoint", gpt, "--prompt", "abc")
    zeroshot = ("zeroshot", "--checkpoint", gpt, "--images", f"{ART}/image.png")
    probe = ("probe", "--checkpoint", gpt, "--output_dir", "probe")
    sample = ("sample", "--checkpoint", dcgan)
    read_only = "no read-only folder: /sys is writable here" if _writable(READ_ONLY) else None
    table: list[tuple[str, tuple[str, ...], tuple[str, ...], str | None]] = [
        ("generate", ("generate",), ("--checkpoint", "--prompt"), None),
        ("generate", ("generate", "--checkpoint", gpt), ("--prompt",), None),
        ("generate", (*generate, "--max_new_tokens", "x"), ("--max_new_tokens", "'x'"), None),
        ("generate", (*generate, "--max_new_tokens", "-1"), ("max_new_tokens", "-1"), None),
        ("generate", (*generate, "--temperature", "-1"), ("temperature", "-1"), None),
        ("generate", (*generate, "--temperature", "hot"), ("--temperature", "'hot'"), None),
        ("generate", (*generate, "--top_k", "0"), ("top_k", "0"), None),
        ("generate", (*generate, "--top_p", "0"), ("top_p", "0"), None),
        ("generate", (*generate, "--top_p", "1.5"), ("top_p", "1.5"), None),
        ("generate", (*generate, "--num_samples", "0"), ("--num_samples", "0"), None),
        ("generate", (*generate, "--fix_unit", "5"), ("--fix_unit", "'5'"), None),
        ("generate", (*generate, "--fix_unit", "a=1"), ("--fix_unit", "'a=1'"), None),
        ("generate", (*generate, "--fix_unit", "1=1"), ("--fix_unit", "GPT"), None),
        ("generate", (*generate, "--seed", "x"), ("--seed", "'x'"), None),
        ("generate", (*generate, "--bogus"), ("--bogus",), None),
        ("generate", ("generate", "--checkpoint", gpt, "--prompt", "xyz"), ("'x'",), None),
        ("convert", ("convert",), ("src", "dst"), None),
        ("convert", ("convert", gpt), ("dst",), None),
        ("convert", ("convert", gpt, dcgan), ("dcgan.ckpt", "--overwrite"), None),
        ("convert", ("convert", gpt, gpt), ("gpt.ckpt", "--overwrite"), None),
        ("convert", ("convert", gpt, f"{ART}/hf_bert"), ("hf_bert", "--overwrite"), None),
        ("convert", ("convert", gpt, "out.ckpt"), ("out.ckpt",), None),
        ("convert", ("convert", "--overwrite", f"{ART}/missing.ckpt", "out"), ("missing.ckpt",), None),
        ("convert", ("convert", gpt, "out", "--bogus"), ("--bogus",), None),
        ("convert", ("convert", gpt, str(READ_ONLY / "converted")), ("/sys/converted",), read_only),
        ("probe", ("probe",), ("--checkpoint", "--data"), None),
        ("probe", (*probe, "--data", f"{ART}/missing.jsonl"), ("missing.jsonl",), None),
        ("probe", (*probe, "--data", f"{ART}/one_class.jsonl"), ("one_class.jsonl",), None),
        ("probe", (*probe, "--data", f"{ART}/labelled.jsonl", "--test_fraction", "0"), ("--test_fraction",), None),
        ("probe", (*probe, "--data", f"{ART}/labelled.jsonl", "--test_fraction", "1.5"), ("--test_fraction",), None),
        ("probe", (*probe, "--data", f"{ART}/labelled.jsonl", "--val_fraction", "-1"), ("--val_fraction",), None),
        ("probe", (*probe, "--data", f"{ART}/labelled.jsonl", "--test_fraction", "x"), ("--test_fraction",), None),
        ("probe", (*probe, "--data", f"{ART}/labelled.jsonl", "--label_field", "nope"), ("nope",), None),
        ("probe", (*probe, "--data", f"{ART}/labelled.jsonl", "--bogus"), ("--bogus",), None),
        ("zeroshot", ("zeroshot",), ("--checkpoint", "--images"), None),
        ("zeroshot", (*zeroshot, "--classes", "a"), ("two classes",), None),
        ("zeroshot", (*zeroshot, "--classes", "a", "a"), ("more than once", "a"), None),
        ("zeroshot", (*zeroshot, "--classes", "a", "b", "--templates", "a photo"), ("'a photo'",), None),
        ("zeroshot", (*zeroshot, "--classes", "a", "b", "--templates", "{} {}"), ("'{} {}'",), None),
        (
            "zeroshot",
            ("zeroshot", "--checkpoint", gpt, "--images", f"{ART}/nope", "--classes", "a", "b"),
            ("nope",),
            None,
        ),
        (
            "zeroshot",
            ("zeroshot", "--checkpoint", gpt, "--images", f"{ART}/empty_folder", "--classes", "a", "b"),
            ("empty_folder",),
            None,
        ),
        ("zeroshot", (*zeroshot, "--class_file", f"{ART}/missing.txt"), ("missing.txt",), None),
        ("zeroshot", (*zeroshot, "--class_file", f"{ART}/latin1.txt"), ("latin1.txt", "not UTF-8", "byte 3"), None),
        ("zeroshot", (*zeroshot, "--class_file", f"{ART}/one_class.txt"), ("two classes",), None),
        ("zeroshot", (*zeroshot, "--classes", "a", "b", "--bogus"), ("--bogus",), None),
        ("sample", ("sample",), ("--checkpoint", "--out"), None),
        ("sample", (*sample, "--out", "grid.txt"), ("grid.txt",), None),
        ("sample", (*sample, "--out", "grid.png", "--num_samples", "0"), ("--num_samples", "0"), None),
        ("sample", (*sample, "--out", "grid.png", "--num_samples", "x"), ("--num_samples", "'x'"), None),
        ("sample", (*sample, "--out", "grid.png", "--interpolate", "--steps", "1"), ("steps", "1"), None),
        ("sample", (*sample, "--out", "grid.png", "--seed", "x"), ("--seed", "'x'"), None),
        ("sample", (*sample, "--out", str(READ_ONLY / "grid.png")), ("/sys/grid.png",), read_only),
        ("shards", ("shards",), ("source", "pattern"), None),
        ("shards", ("shards", f"{ART}/missing.csv", "out/s-%06d.tar"), ("missing.csv",), None),
        ("shards", ("shards", f"{ART}/pairs_no_columns.csv", "out/s-%06d.tar"), ("filepath,caption",), None),
        ("shards", ("shards", f"{ART}/uncaptioned", "out/s-%06d.tar"), ("caption",), None),
        ("shards", ("shards", f"{ART}/empty_folder", "out/s-%06d.tar"), ("empty_folder",), None),
        ("shards", ("shards", f"{ART}/captioned", "out/s.tar"), ("'out/s.tar'",), None),
        ("shards", ("shards", f"{ART}/captioned", "out/s-%06d.tar", "--maxcount", "0"), ("maxcount",), None),
        ("shards", ("shards", f"{ART}/captioned", "out/s-%06d.tar", "--maxcount", "x"), ("--maxcount",), None),
        ("shards", ("shards", f"{ART}/captioned", str(READ_ONLY / "s-%06d.tar")), ("/sys/s-%06d.tar",), read_only),
        ("shards", ("shards", f"{ART}/pairs_header_only.csv", "out/s-%06d.tar"), ("pairs_header_only.csv",), None),
        ("shards", ("shards", f"{ART}/pairs_empty.csv", "out/s-%06d.tar"), ("pairs_empty.csv", "header"), None),
        ("shards", ("shards", f"{ART}/pairs_missing_image.csv", "out/s-%06d.tar"), ("nope.png", "row 1"), None),
        ("shards", ("shards", f"{ART}/pairs_short_row.csv", "out/s-%06d.tar"), ("pairs_short_row.csv", "line 3"), None),
        ("shards", ("shards", f"{ART}/pairs_not_image.csv", "out/s-%06d.tar"), ("labelled.jsonl", "row 2"), None),
        (
            "shards",
            ("shards", f"{ART}/pairs_latin1.csv", "out/s-%06d.tar"),
            ("pairs_latin1.csv", "not UTF-8", "line 2"),
            None,
        ),
    ]
    return [
        param(f"{command}:{' '.join(args[1:])}".replace(ART + "/", ""), Case(args, names), waits_for)
        for command, args, names, waits_for in table
    ]


def _writable(folder: Path) -> bool:
    probe = folder / ".radford-write-test"
    try:
        probe.write_text("")
    except OSError:
        return False
    probe.unlink()
    return True


# -- running a case ------------------------------------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("quiet_lightning")


def listing(*folders: Path) -> dict[Path, tuple[int, int]]:
    return {path: (path.stat().st_size, path.stat().st_mtime_ns) for folder in folders for path in folder.rglob("*")}


def refused(case: Case, workdir: Path, art: Path | None, capsys, monkeypatch) -> None:
    """Run ``case`` in ``workdir``: exit ``case.code``, at most 3 lines naming ``case.names``, nothing written."""
    monkeypatch.chdir(workdir)
    for name, content in case.files.items():
        (workdir / name).write_bytes(content)
    folders = [workdir, *([art] if art else [])]
    before = listing(*folders)
    args = [arg.replace(ART, str(art)) for arg in case.args]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert exit_info.value.code == case.code, err[-3000:]
    assert "Traceback" not in err and 1 <= len(lines) <= 3, err[-3000:]
    assert lines[-1].startswith("radford: error: "), lines
    for name in case.names:
        assert name in err, (name, lines)
    assert listing(*folders) == before
    assert not (art and (art / "ran").exists()), "pickled code ran"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """The working folder of every case: cases write nothing, so one folder serves them all (and costs less)."""
    return tmp_path_factory.mktemp("work")


@pytest.mark.parametrize("case", RECIPE_CASES)
def test_a_broken_recipe_is_refused_in_one_line(case, workdir, capsys, monkeypatch):
    refused(case, workdir, None, capsys, monkeypatch)


@pytest.mark.parametrize("case", checkpoint_cases() + lightning_cases() + command_cases())
def test_a_bad_file_or_argument_is_refused_in_one_line(case, art, workdir, capsys, monkeypatch):
    refused(case, workdir, art, capsys, monkeypatch)


@pytest.mark.parametrize("bad", [*BAD_FILES, "hf_foreign_global"])
def test_load_refuses_a_bad_file_in_one_line(art, bad):
    with pytest.raises(RadfordError) as error:
        radford.load(art / bad)
    assert bad in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda: TextData(num_workers=-1),
        lambda: TaskData(Char(), train="train.jsonl", num_workers=-1),
        lambda: LambadaData("lambada.jsonl", Char(), num_workers=-1),
        lambda: ImageData(num_workers=-1),
        lambda: PairData(num_workers=-1),
    ],
    ids=["text", "task", "lambada", "images", "pairs"],
)
def test_a_data_module_refuses_negative_workers_in_one_line(make):
    """From Python as from a recipe (where ``config_errors`` catches it first): torch's DataLoader would refuse it
    only when the first loader is built, after the data were prepared."""
    with pytest.raises(RadfordError) as error:
        make()
    assert "num_workers" in str(error.value) and "-1" in str(error.value) and "\n" not in str(error.value)


def test_the_matrix_is_as_large_as_promised():
    """500 broken recipes, covering every bundled one; 200 bad files and arguments, covering every command."""
    assert len(RECIPE_CASES) >= 500
    covered = {case.id.partition(":")[0] for case in RECIPE_CASES}
    assert covered == {path.relative_to(BUNDLED).with_suffix("").as_posix() for path in RECIPES}
    others = checkpoint_cases() + lightning_cases() + command_cases()
    assert len(others) + len(BAD_FILES) + 1 >= 200
    commands = {case.values[0].args[0] for case in others}
    assert commands == {
        "fit",
        "validate",
        "test",
        "predict",
        "generate",
        "convert",
        "probe",
        "zeroshot",
        "sample",
        "shards",
    }


def test_what_a_class_itself_said_in_a_union_is_the_line():
    """jsonargparse words a class that fails in a ``LightningModule | None`` argument as the union's failure; the line
    is the class's own complaint (radford/lightning_cli.py sends such a ValueError here only for parse errors today:
    a constructor's error that is not a RadfordError, like this one, is still re-raised)."""
    constructor = """Does not validate against any of the Union subtypes
Subtypes: [<class 'lightning.pytorch.core.module.LightningModule'>, <class 'NoneType'>]
Errors:
  - Trying to create tensor with negative dimension -3: [-3, 3, 8, 8]
  - Expected a <class 'NoneType'>
Given value type: <class 'jsonargparse._namespace.Namespace'>
Given value: Namespace(class_path='radford.models.clip.CLIP', init_args=Namespace(vision_width=-3))"""
    assert one_line(constructor) == (
        "radford.models.clip.CLIP: Trying to create tensor with negative dimension -3: [-3, 3, 8, 8]"
    )
    resumed = """Parser key "model":
  Does not validate against any of the Union subtypes
  Subtypes: [<class 'lightning.pytorch.core.module.LightningModule'>, <class 'NoneType'>]
  Errors:
    - Import path os.path.Nope does not correspond to a subclass of LightningModule
    - Expected a <class 'NoneType'>
  Given value type: <class 'dict'>
  Given value: {'class_path': 'os.path.Nope', 'init_args': {}}"""
    assert one_line(resumed) == "model: Import path os.path.Nope does not correspond to a subclass of LightningModule"
