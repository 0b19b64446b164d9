"""radford new-plugin: the package it writes installs with pip, passes its own tests at once, and trains
through the radford command; bad names and existing folders are refused in one line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from radford.cli import main
from tests.helpers import error_line, pip_install, radford_cli


@pytest.mark.slow
def test_scaffold_installs_passes_its_tests_and_trains(tmp_path, capsys):
    main(["new-plugin", "scaffolded", "--dir", str(tmp_path)])
    assert "radford fit --recipe scaffolded" in capsys.readouterr().out
    package = tmp_path / "radford-scaffolded"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["radford-scaffolded"]  # no staging folder left behind
    site = tmp_path / "site"
    pip_install(package, site)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert tests.returncode == 0 and "2 passed" in tests.stdout, tests.stdout[-3000:]

    listing = radford_cli("plugins", "--check", pythonpath=site).stdout.splitlines()
    assert ["scaffolded", "radford-scaffolded", "radford_scaffolded.model:Scaffolded", "ok"] in [
        line.split() for line in listing
    ]
    fit = radford_cli("fit", "--recipe", "scaffolded", "--trainer.max_steps", "3", pythonpath=site, cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr[-2000:]
    assert (tmp_path / "runs" / "scaffolded" / "version_0" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("My_Model", "invalid plugin name 'My_Model': use lowercase letters and digits"),
        ("2fast", "invalid plugin name '2fast'"),
        ("double--hyphen", "invalid plugin name 'double--hyphen'"),
        ("radford-thing", "without the 'radford-' prefix"),
        ("gpt2", "plugin name 'gpt2' is taken: radford registers a model"),
        ("gpt2-tiny", "plugin name 'gpt2-tiny' is taken: radford has a recipe"),
    ],
)
def test_bad_names_are_one_line_naming_the_rule(name, expected, capsys, tmp_path):
    assert expected in error_line(capsys, "new-plugin", name, "--dir", str(tmp_path))
    assert not any(tmp_path.iterdir())


def test_never_overwrites(capsys, tmp_path):
    existing = tmp_path / "radford-mine"
    existing.mkdir()
    (existing / "work.py").write_text("keep me")
    assert "already exists" in error_line(capsys, "new-plugin", "mine", "--dir", str(tmp_path))
    assert [p.name for p in existing.iterdir()] == ["work.py"] and (existing / "work.py").read_text() == "keep me"


def test_without_dir_the_package_goes_in_the_working_directory(tmp_path, monkeypatch, capsys):
    """The scaffold is the user's source code, not a run's output: by default it is written where they are (as the
    README's `radford new-plugin my-model && pip install -e radford-my-model` needs), and nothing else is."""
    monkeypatch.chdir(tmp_path)
    main(["new-plugin", "mine"])
    assert "pip install -e radford-mine" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["radford-mine"]  # no runs/, no staging folder
    assert (tmp_path / "radford-mine" / "pyproject.toml").is_file()
