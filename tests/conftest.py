"""Shared fixtures."""

import os
from pathlib import Path

import pytest

# Real data (GPT-2's vocabulary, Tiny Shakespeare) lives beside the repository, not in it.
DEFAULT_SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder: $RADFORD_TEST_DATA, else ../shared next to the repository."""
    path = Path(os.environ.get("RADFORD_TEST_DATA", DEFAULT_SHARED))
    if not path.is_dir():
        pytest.skip("RADFORD_TEST_DATA (default ../shared) not found: real data tests need it")
    return path
