"""The README's commands, run as written and in the order written, from a fresh copy of the checkout, with small step
counts; afterwards the copy's ``git status`` shows nothing that a command wrote unasked.

Every command of the README's ``bash`` blocks runs, except those listed in ``SKIPPED`` with the reason (what a fresh
clone on a CPU machine lacks); a new README command runs unless it is listed there. ``pip install`` steps are left
out of a chain of commands (this environment has installed them already), and a command that repeats an earlier
one but for its environment variables runs once.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

# A fragment of a README command -> why that command does not run here.
SKIPPED = {
    "python -m pytest": "the test suite itself",
    "pip install -e radford-my-model": "installs the scaffolded plugin into this environment",
    "size/gpt2-medium": "8 devices",
    "strategy/fsdp": "GPUs",
    "torchrun": "several machines",
    "srun": "SLURM",
    "#SBATCH": "SLURM",
    "#!/bin/bash": "a SLURM script",
    "my-run.yaml": "a recipe of the user's own",
    "shakespeare-char": "downloads Tiny Shakespeare (tests never download)",
    "mlstm": "downloads Rotten Tomatoes snippets, or needs the user's reviews",
    "igpt-mnist": "downloads MNIST",
    "dcgan-mnist": "downloads MNIST",
    "models/gpt2": "GPT-2's weights, downloaded by the user",
    "photos/": "the user's photos",
    "captions.csv": "the user's captions",
    "shards/train": "the user's shards",
    "clip-vit-base-patch32/": "CLIP's weights, downloaded by the user",
    "generating-reviews-discovering-sentiment": "OpenAI's released mLSTM, cloned by the user",
    "gpt1-model/": "GPT-1's release, downloaded by the user",
    "labelled.jsonl": "the user's labelled texts",
}
ALLOWED = ("runs/",)  # what commands write unasked: the run folders, where the README says


def readme_commands() -> list[str]:
    """The commands of the README's ``bash`` blocks, continuation lines joined, trailing comments dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [re.sub(r"\s+", " ", line.split("  #")[0]).strip() for line in lines if line.strip()]


def without_installs(command: str) -> str:
    """``command`` without its ``pip install`` steps: this environment has them installed."""
    return " && ".join(part for part in command.split(" && ") if not part.startswith("pip install"))


def shortened(command: str, steps: itertools.count) -> str:
    """Each ``radford fit`` a few steps longer than the one before (a resume always has steps left), each evaluation
    and generation short."""
    parts = []
    for part in command.split(" && "):
        if re.search(r"\bradford fit\b", part):
            part += f" --trainer.max_steps {next(steps)} --trainer.limit_val_batches 2 --trainer.num_sanity_val_steps 0"
        elif re.search(r"\bradford (validate|test)\b", part):
            part += " --trainer.limit_val_batches 2 --trainer.limit_test_batches 2"
        elif re.search(r"\bradford generate\b", part):
            part += " --max_new_tokens 8"
        parts.append(part)
    return " && ".join(parts)


def distinct(commands: list[str]) -> list[str]:
    """The commands, each once: one that repeats an earlier one but for its environment variables
    (``RADFORD_PLUGINS= radford fit ...``) is left out, to keep the test short (tests/test_plugins.py covers those)."""
    seen: set[str] = set()
    kept = []
    for command in commands:
        bare = re.sub(r"^(\w+=\S* )+", "", command)
        if bare not in seen:
            seen.add(bare)
            kept.append(command)
    return kept


def named_outputs(commands: list[str]) -> set[str]:
    """Paths the commands name as outputs (``radford convert X hf-gpt2/``, ``--out grid.png``)."""
    named = set()
    for command in commands:
        named |= {match.rstrip("/") for match in re.findall(r"radford convert \S+ (\S+)", command)}
        named |= set(re.findall(r"--out (\S+)", command))
    return named


def copy_checkout(destination: Path) -> None:
    """The working tree's files that git tracks or would track, as a fresh clone of it, committed."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for relative in filter(None, listed):
        source = ROOT / relative
        if source.is_file():
            (destination / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / relative)
    for git in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "clone"]):
        subprocess.run(["git", *git], cwd=destination, check=True, capture_output=True)


def test_every_readme_command_is_run_or_skipped_with_a_reason():
    commands = readme_commands()
    assert "radford fit --recipe gpt2-tiny --trainer.max_steps 20" in commands
    assert len([c for c in commands if not any(f in c for f in SKIPPED)]) >= 12
    used = {fragment for fragment in SKIPPED if any(fragment in command for command in commands)}
    assert used == set(SKIPPED), f"no README command needs these any more: {set(SKIPPED) - used}"


def test_ci_runs_the_readme_test_command_exactly():
    test_command = next(c for c in readme_commands() if "python -m pytest" in c)
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


@pytest.mark.slow
def test_readme_commands_work_in_order_and_write_only_where_asked(tmp_path):
    checkout = tmp_path / "radford"
    copy_checkout(checkout)
    environment = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",  # the session's token cache (conftest), shared
        "PYTHONPATH": os.pathsep.join([str(checkout), str(checkout / "plugins" / "radford-igpt")]),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    environment.pop("RADFORD_RUN_DIR", None)
    steps = itertools.count(2, 2)
    chosen = [without_installs(command) for command in readme_commands() if not any(f in command for f in SKIPPED)]
    ran = [shortened(command, steps) for command in distinct(chosen)]
    for command in ran:
        result = subprocess.run(
            ["bash", "-c", command], cwd=checkout, env=environment, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        assert "Traceback" not in result.stderr, f"{command}\n{result.stderr[-3000:]}"
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    named = named_outputs(ran)
    written = [
        line
        for line in status
        if not line[3:].startswith(ALLOWED)
        and "__pycache__/" not in line
        and not any(line[3:].startswith(path) for path in named)
    ]
    assert written == [], "written into the checkout unasked"
    assert (checkout / "runs" / "gpt2-tiny" / "latest" / "checkpoints" / "last.ckpt").is_file()
