"""The radford command: every mistake a user can make is one line on stderr and exit status 2."""

from __future__ import annotations

import pytest

import radford
from radford.cli import COMMANDS, LIGHTNING_COMMANDS, main
from tests.helpers import error_line, radford_cli

pytestmark = pytest.mark.usefixtures("quiet_lightning")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["fit", "--recipe", "gpt2-tny"], ["'gpt2-tny'", "gpt2-tiny", "shakespeare-char"]),
        (["fit", "--recipe"], ["--recipe needs a value"]),
        (["fit", "--recipe", "gpt2-tiny", "--model", "gpt3"], ["'gpt3'", "registered models:", "gpt1", "gpt2"]),
        (
            ["fit", "--recipe", "gpt2-tiny", "--data.init_args.tokenizer", "wordpiece"],
            ["'wordpiece'", "registered tokenizers: bpe, char, clip, ", "gpt2"],
        ),
        (
            ["fit", "--recipe", "gpt2-tiny", "--model.init_args.n_layr", "3"],
            ["'model.init_args.n_layr'", "did you mean 'n_layer'?", "n_head"],
        ),
        (
            ["fit", "--recipe", "gpt2-tiny", "--data.init_args.tokenizer.init_args.vocab_sise", "3"],
            ["'data.init_args.tokenizer.init_args.vocab_sise'", "did you mean 'vocab_size'?"],
        ),
        (
            ["fit", "--recipe", "gpt2-tiny", "--model.init_args.n_layer", "abc"],
            ["model.init_args.n_layer", "expected int", "'abc'"],
        ),
        (["fit", "--recipe", "gpt2-tiny", "--trainer.max_stepz", "3"], ["did you mean 'max_steps'?"]),
        (["fit", "--recipe", "gpt2-tiny", "--trainer.precision", "17"], ["trainer.precision", "'17'", "bf16-mixed"]),
        (["fit", "--recipe", "gpt2-tiny", "--model", "radford.models.gpt.Nope"], ["cannot import", "Nope"]),
        (
            ["fit", "--recipe", "gpt2-tiny", "--data.init_args.sources", "[/no/such/file.txt]"],
            ["'/no/such/file.txt' not found", "stdlib"],
        ),
        (["fti"], ["'fti'", "fit, validate, test, predict, plugins, recipes"]),
        (
            ["fit", "--recipe", "gpt2-tiny", "--model.init_args.optimizer", "sgd"],
            ["model.init_args.optimizer: got 'sgd'; valid: adamw, muon"],
        ),
        (["plugins", "--chek"], ["radford plugins: unrecognized arguments: --chek"]),
    ],
)
def test_bad_input_is_one_clear_line(capsys, args, expected):
    line = error_line(capsys, *args)
    for fragment in expected:
        assert fragment in line, line


def test_bad_recipe_files(capsys, tmp_path):
    malformed = tmp_path / "malformed.yaml"
    malformed.write_text("model:\n  class_path: gpt2\n   init_args: [1\n")
    assert "line 3" in error_line(capsys, "fit", "--recipe", str(malformed))
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    assert "must be a mapping" in error_line(capsys, "fit", "--recipe", str(scalar))
    unknown_section = tmp_path / "typo.yaml"
    unknown_section.write_text("modle: {class_path: gpt2}\n")
    line = error_line(capsys, "fit", "--recipe", "gpt2-tiny", "--recipe", str(unknown_section))
    assert "did you mean 'model'?" in line
    assert "not found" in error_line(capsys, "fit", "--config", str(tmp_path / "missing.yaml"))


def test_error_from_console_script_has_no_traceback():
    result = radford_cli("fit", "--recipe", "gpt2-tiny", "--model.init_args.n_layr", "3")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "Traceback" not in result.stderr


def test_listing_commands(capsys):
    main(["recipes"])
    out = capsys.readouterr().out
    assert "gpt2-tiny" in out and "Python standard library" in out and "strategy/fsdp" in out
    main(["plugins", "--check"])  # imports every registered plugin: each of radford's own must load
    rows = [line.split(maxsplit=3) for line in capsys.readouterr().out.splitlines() if line.startswith(" ")]
    assert ["gpt2", "radford", "radford.models.gpt:GPT", "ok"] in rows
    assert [row for row in rows if row[1] == "radford" and row[3:] != ["ok"]] == []


def test_help_lists_every_command_and_recipe(capsys):
    main(["--help"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("usage: radford COMMAND [options]")
    recipes = next(i for i, line in enumerate(lines) if line.startswith("recipes"))
    listed = {line.split()[0]: line for line in lines[:recipes] if line.startswith("  ")}
    assert set(listed) == {*LIGHTNING_COMMANDS, *COMMANDS}
    assert "recipe" in listed["fit"] and "checkpoint" in listed["validate"]
    assert "without importing" in listed["plugins"] and "description" in listed["recipes"]
    names = " ".join(lines[recipes:])
    assert "gpt2-tiny," in names and "fragments: " in names and "size/gpt2-medium," in names
    main([])
    assert capsys.readouterr().out.splitlines() == lines


@pytest.mark.parametrize("command", LIGHTNING_COMMANDS)
def test_training_help_opens_with_the_recipe_and_examples(capsys, command):
    main([command, "--recipe", "gpt2-tiny", "--help"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"usage: radford {command} --recipe NAME_OR_YAML")
    assert any("--help-all" in line for line in lines[:30]) and any("--ckpt_path" in line for line in lines[:30])
    assert any("gpt2-tiny," in line for line in lines[:30])
    examples = lines[lines.index("examples:") + 1 :]
    assert len([line for line in examples if line.startswith(f"  radford {command} ")]) == 3
    assert len(lines) < 40


def test_help_all_is_lightnings_and_a_class_has_its_own(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--recipe", "gpt2-tiny", "--help-all"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "--trainer.max_steps" in out and "--model.help" in out and len(out.splitlines()) > 200
    with pytest.raises(SystemExit):
        main(["fit", "--model.help", "gpt2"])  # a registered short name, as a recipe takes
    assert "--model.n_layer" in capsys.readouterr().out


def test_version_names_radford_torch_and_lightning(capsys):
    from importlib.metadata import version

    main(["--version"])
    assert capsys.readouterr().out.strip() == (
        f"radford {radford.__version__} (torch {version('torch')}, lightning {version('lightning')})"
    )


def test_ctrl_c_outside_training_exits_130(capsys, monkeypatch):
    monkeypatch.setitem(COMMANDS, "recipes", "tests.test_cli:interrupted_command")
    with pytest.raises(SystemExit) as stop:
        main(["recipes"])
    assert stop.value.code == 130 and "Traceback" not in capsys.readouterr().err


def interrupted_command(args):
    """Stands for any command, interrupted by Ctrl-C."""
    raise KeyboardInterrupt


def test_misspelt_trainer_key_in_a_recipe(capsys, tmp_path):
    recipe = tmp_path / "typo.yaml"
    recipe.write_text("trainer: {max_stepz: 3}\n")
    line = error_line(capsys, "fit", "--recipe", "gpt2-tiny", "--recipe", str(recipe))
    assert "'trainer.max_stepz'" in line and "did you mean 'max_steps'?" in line
