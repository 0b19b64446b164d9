"""Shared fixtures of radford-igpt's tests."""

import os
from pathlib import Path

import pytest

# MNIST lives beside radford's checkout (../shared from its root; this file is three folders below that root).
DEFAULT_SHARED = Path(__file__).resolve().parents[4] / "shared"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder: $RADFORD_TEST_DATA, else ../shared next to radford's repository."""
    path = Path(os.environ.get("RADFORD_TEST_DATA", DEFAULT_SHARED))
    if not path.is_dir():
        pytest.skip("RADFORD_TEST_DATA (default ../shared) not found: the MNIST test needs it")
    return path
