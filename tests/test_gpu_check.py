"""benchmarks/gpu_check.py runs end to end on CPU with tiny models, so that its first GPU run is not its first run."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT

ROWS = ["eager fp32", "bf16-mixed", "bf16-mixed + compile", "FSDP2, 1 device, bf16-mixed", "CLIP ViT-tiny"]


@pytest.mark.slow
def test_gpu_check_runs_on_cpu_with_tiny_models():
    result = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--cpu", "--tiny", "--steps", "8"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(table) == len(ROWS)
    losses = []
    for line, name in zip(table, ROWS, strict=True):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert name in cells[0]
        assert re.fullmatch(r"[\d,]+ (tokens|images)/s", cells[1]) and cells[1][0] != "0", cells
        assert re.fullmatch(r"\d+\.\d%", cells[2]), cells  # an MFU: the CPU's peak was measured
        losses.append(float(cells[4]))
    # The GPT rows train the same model on the same batches: bf16, compiled and sharded track fp32.
    assert losses[1:4] == pytest.approx([losses[0]] * 3, abs=0.01)
    assert "fp32 against bf16-mixed after 8 steps" in result.stdout
