"""The machine's cores shared among pytest-xdist workers (``-n auto``), so that threads x workers x processes stays
within the cores (an oversubscribed suite runs many times slower, not a little).

Each worker's torch, and every process a test starts (through ``OMP_NUM_THREADS``), gets cores // workers threads.
A test holds its worker's share of the cores while it runs; a test marked ``processes`` (it starts several training
processes at once) holds every share, so it waits for the other workers' current tests, and they wait for it.
Without xdist, nothing here does anything. Loaded with ``-p tests.cores`` (pyproject's addopts).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import torch

WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ...: set in xdist's workers only
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_held: set[int] = set()  # the shares this worker holds now (a lock file is not re-entrant)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "processes: starts several processes at once, which need every core")
    if WORKER is not None:
        threads = max(1, len(os.sched_getaffinity(0)) // WORKERS)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


@contextlib.contextmanager
def holding(folder: Path, shares: Iterable[int]) -> Iterator[None]:
    """Holds the cores' shares (lock files in ``folder``, which every worker sees) until the block ends."""
    wanted = sorted(set(shares) - _held)
    with contextlib.ExitStack() as stack:
        gate = stack.enter_context(open(folder / "cores.gate", "a"))
        # One worker at a time takes shares, in order: a test waiting for every share is not starved by the next
        # tests of the others, and two such tests never hold one share each while waiting for the other's.
        # POSIX locks (lockf), not flock: a process the test forks (a DataLoader worker) does not inherit them, so
        # one left running cannot hold a share for ever.
        fcntl.lockf(gate, fcntl.LOCK_EX)
        for share in wanted:
            fcntl.lockf(stack.enter_context(open(folder / f"cores.{share}", "a")), fcntl.LOCK_EX)
        fcntl.lockf(gate, fcntl.LOCK_UN)
        _held.update(wanted)
        try:
            yield
        finally:
            _held.difference_update(wanted)


@contextlib.contextmanager
def all_cores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every share, for a fixture that starts several processes (a test marked ``processes`` needs no more)."""
    if WORKER is None:
        yield
        return
    with holding(tmp_path_factory.getbasetemp().parent, range(WORKERS)):
        yield


@pytest.fixture(autouse=True)
def cores(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    if WORKER is None:
        yield
        return
    several = request.node.get_closest_marker("processes") is not None
    shares = range(WORKERS) if several else [int(WORKER.removeprefix("gw"))]
    with holding(tmp_path_factory.getbasetemp().parent, shares):
        yield
