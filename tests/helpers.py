"""Helpers shared by tests: a quiet Lightning trainer, the radford CLI in a subprocess, plugin packages installed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning as L
import pytest

from radford.cli import main

ROOT = Path(__file__).resolve().parent.parent
# What a test's trainer leaves out: no GPU (CI has none; results must not depend on one), no logs, checkpoints,
# progress bar or model summary in the test's output or working directory.
QUIET = dict(
    accelerator="cpu",
    devices=1,
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
)


def quiet_trainer(**overrides) -> L.Trainer:
    """A ``lightning.Trainer`` for tests, ``QUIET`` unless ``overrides`` say otherwise (the ``quiet_trainer``
    fixture; import it where a fixture cannot reach, in a module's helper function)."""
    return L.Trainer(**{**QUIET, **overrides})


def radford_cli(
    *args: str,
    pythonpath: Path | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """``radford ARGS`` as a user runs it, in a fresh process (entry points are read at start)."""
    environment = {**os.environ, **(env or {})}
    if pythonpath is not None:
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), environment.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "radford.cli", *args],
        cwd=cwd or ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def install_plugin(
    source: Path,
    site: Path,
    distribution: str,
    package: str,
    files: dict[str, str],
    entry_points: dict[str, dict[str, str]],
    packages: list[str] | None = None,
    package_data: dict[str, list[str]] | None = None,
) -> None:
    """Write a plugin distribution to ``source`` and ``pip install`` it into the folder ``site``."""
    for relative, text in files.items():
        path = source / package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    groups = "\n".join(
        f'[project.entry-points."{group}"]\n' + "\n".join(f'"{name}" = "{target}"' for name, target in names.items())
        for group, names in entry_points.items()
    )
    pyproject = f"""\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "{distribution}"
version = "0.1.0"

[tool.setuptools]
packages = {packages or [package]!r}

[tool.setuptools.package-data]
{chr(10).join(f'"{k}" = {v!r}' for k, v in (package_data or {}).items())}

{groups}
"""
    (source / "pyproject.toml").write_text(pyproject.replace("'", '"'))
    pip_install(source, site)


def error_line(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("radford: error: "), err
    return err[0]


def pip_install(source: Path, site: Path) -> None:
    """``pip install`` the package at ``source`` into the folder ``site``, without its dependencies."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
