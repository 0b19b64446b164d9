"""Run the ``radford`` command as a user would, for the benchmark scripts beside this file."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple


class Run(NamedTuple):
    stdout: str
    seconds: float


def run_radford(args: list[str], cwd: Path) -> Run:
    """``radford ARGS`` in ``cwd`` (created if needed), printed as a user would type it; exits on failure."""
    print(f"$ (cd {cwd} && radford {shlex.join(args)})", flush=True)
    cwd.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "radford.cli", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"radford {args[0]} failed:\n{result.stderr[-3000:]}")
    return Run(result.stdout, time.perf_counter() - start)
