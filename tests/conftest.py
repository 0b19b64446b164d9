"""Shared fixtures."""

import logging
import os
from collections.abc import Callable
from pathlib import Path

import lightning as L
import pytest

from tests import helpers

# Real data (GPT-2's vocabulary, Tiny Shakespeare) lives beside the repository, not in it.
DEFAULT_SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder: $RADFORD_TEST_DATA, else ../shared next to the repository."""
    path = Path(os.environ.get("RADFORD_TEST_DATA", DEFAULT_SHARED))
    if not path.is_dir():
        pytest.skip("RADFORD_TEST_DATA (default ../shared) not found: real data tests need it")
    return path


@pytest.fixture(scope="session", autouse=True)
def datasets_mirror() -> None:
    """Datasets by name come from ../shared/datasets, as a machine without network sets RADFORD_DATASETS_MIRROR."""
    mirror = Path(os.environ.get("RADFORD_TEST_DATA", DEFAULT_SHARED)) / "datasets"
    if "RADFORD_DATASETS_MIRROR" not in os.environ and mirror.is_dir():
        os.environ["RADFORD_DATASETS_MIRROR"] = str(mirror)


@pytest.fixture(scope="session", autouse=True)
def token_cache(tmp_path_factory) -> Path:
    """Tests (and the CLI subprocesses they start) cache tokens in a temporary folder, never in ~/.cache."""
    path = tmp_path_factory.mktemp("radford-cache")
    os.environ["RADFORD_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """About 400 KB of real text: the standard library's json, email and logging packages."""
    stdlib = Path(os.__file__).parent
    folder = tmp_path_factory.mktemp("corpus")
    for package in ("json", "email", "logging"):
        for source in sorted((stdlib / package).glob("*.py")):
            (folder / f"{package}_{source.name}").write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    return folder


@pytest.fixture
def quiet_trainer() -> Callable[..., L.Trainer]:
    """Makes CPU trainers without logger, checkpoints, progress bar or model summary: ``quiet_trainer(max_steps=5)``."""
    return helpers.quiet_trainer


@pytest.fixture
def quiet_lightning():
    """Lightning's info lines ("Seed set to ...") go to a handler bound to an earlier test's stderr: tests that count
    stderr's lines keep them out (``pytestmark = pytest.mark.usefixtures("quiet_lightning")``)."""
    loggers = [logging.getLogger(name) for name in ("lightning.fabric", "lightning.pytorch")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)
