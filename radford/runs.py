"""Run folders: where a command writes, and how a later command finds it.

``radford fit`` writes under its root folder (``--trainer.default_root_dir``, by default ``runs/<recipe>`` in the
working directory) into a fresh ``version_N``, reserved with ``mkdir``, which fails for all but one of the processes
that try the same name at once, on shared filesystems too: two fits started together never share a folder.
``<root>/latest`` points at the newest fit (a symlink, or a file naming the folder where links are not allowed).
``validate``, ``test`` and ``predict`` make no version: they write beside the run of the checkpoint they read
(``version_3/test/``), or in ``<root>/<command>/`` without one; ``radford probe``, which reads a checkpoint outside
Lightning, writes the same way (``beside_checkpoint``). A run that fails before its first step leaves no
folder behind, and temporary checkpoint files that a killed run left are removed by the next run under that root.

Nothing here imports torch or Lightning: the CLI resolves paths before they load.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

RUNS = "runs"
LATEST = "latest"
VERSION = "version_"
CHECKPOINTS = "checkpoints"
OWNER = ".radford-owner"  # "host pid" of the run in the folder: tells the files a dead run left from a live one's
RUN_DIR_VARIABLE = "RADFORD_RUN_DIR"  # rank zero's run folder, for the ranks that Lightning's DDP starts after it
# What launchers (torchrun, SLURM, Lightning's own DDP, LSF) set to a process's rank; unset or 0 in the first process.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


@dataclass(frozen=True)
class RunFolder:
    """Where one command writes. ``made`` lists the folders this process created for it, the run's own first: they
    go again if the run fails before its first step (a parent only while empty, since another run may share it)."""

    path: Path
    made: tuple[Path, ...] = ()

    def discard(self) -> None:
        if not self.made:
            return
        shutil.rmtree(self.made[0], ignore_errors=True)
        for parent in self.made[1:]:
            try:
                parent.rmdir()
            except OSError:  # another run writes there too
                return


def is_rank_zero() -> bool:
    """Whether this is the job's first process: the one that reserves the folder and reports. Read from what the
    launchers set, because the process group does not exist yet when the folder is chosen."""
    return all(os.environ.get(name, "0") == "0" for name in RANK_VARIABLES)


def root_folder(default_root_dir: str | os.PathLike | None, recipe: str | None) -> Path:
    """A command's root folder: ``--trainer.default_root_dir`` where given, else ``runs/<recipe>``."""
    return Path(default_root_dir) if default_root_dir else Path(RUNS) / (recipe or "default")


def _missing(path: Path) -> tuple[Path, ...]:
    """``path`` and those of its parents that do not exist yet, deepest first."""
    return tuple(p for p in (path, *path.parents) if not p.exists() and p != Path())


def _version(path: Path) -> int | None:
    number = path.name.removeprefix(VERSION)
    return int(number) if path.name.startswith(VERSION) and number.isdigit() else None


def versions(root: Path) -> list[Path]:
    """The ``version_N`` folders under ``root``, oldest first."""
    found = [p for p in root.glob(f"{VERSION}*") if _version(p) is not None and p.is_dir()]
    return sorted(found, key=_version)


def reserve(root: Path) -> RunFolder:
    """A fresh ``version_N`` under ``root``, one past the highest there; ``mkdir`` lets one process win each name."""
    missing = _missing(root)
    root.mkdir(parents=True, exist_ok=True)
    number = max((_version(p) for p in versions(root)), default=-1) + 1
    while True:
        folder = root / f"{VERSION}{number}"
        try:
            folder.mkdir()
        except FileExistsError:
            number += 1
            continue
        return RunFolder(folder, (folder, *missing))


def fit_folder(root: Path) -> RunFolder:
    """The folder of a fit: reserved by rank zero, which hands it to the ranks Lightning starts after it through the
    environment; a rank started by another launcher (torchrun, SLURM) writes nothing itself, and Lightning
    broadcasts rank zero's checkpoint and log folders to it."""
    if not is_rank_zero():
        return RunFolder(Path(os.environ.get(RUN_DIR_VARIABLE, root)))
    run = reserve(root)
    os.environ[RUN_DIR_VARIABLE] = str(run.path.resolve())
    return run


def run_of(checkpoint: str | os.PathLike) -> Path | None:
    """The run folder a checkpoint was saved in (``<run>/checkpoints/last.ckpt``), through ``latest`` links."""
    path = Path(resolve(str(checkpoint))).resolve()
    return path.parent.parent if path.parent.name == CHECKPOINTS else None


def eval_folder(root: Path, ckpt_path: str | None, stage: str) -> RunFolder:
    """Where ``validate``, ``test`` or ``predict`` write: ``<run>/<stage>`` beside the checkpoint's run, else
    ``<root>/<stage>``. An earlier result there is replaced (rank zero clears it)."""
    run = run_of(ckpt_path) if ckpt_path else None
    path = (run or root) / stage
    if not is_rank_zero():
        return RunFolder(path)
    shutil.rmtree(path, ignore_errors=True)
    return RunFolder(path, _missing(path))


def beside_checkpoint(checkpoint: str, command: str) -> Path:
    """Where a command that reads a checkpoint outside Lightning (``radford probe``) writes by default, as
    ``eval_folder`` places an evaluation: ``<run>/<command>`` beside a radford run's checkpoint, else
    ``runs/<command>/<name>``, ``<name>`` made of the checkpoint's last two path parts (``model.ckpt`` -> ``model``,
    OpenAI's ``generating-reviews-discovering-sentiment/model`` -> ``generating-reviews-discovering-sentiment-model``,
    a hub id ``openai-community/gpt2`` -> ``openai-community-gpt2``): two parts, because OpenAI's releases are all
    folders named ``model``. Never inside the checkpoint's own folder, which may be a download or the hub's cache."""
    run = run_of(checkpoint)
    if run is not None:
        return run / command
    path = Path(checkpoint)
    parts = [part for part in path.parts if part not in (path.anchor, ".", "..", "~")][-2:]
    if parts:
        parts[-1] = parts[-1].removesuffix(".ckpt")
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(parts)).strip("-.") or "checkpoint"
    return Path(RUNS) / command / name


def claim(folder: Path) -> None:
    """Mark ``folder`` as this process's, so that a later run can tell the files it leaves if killed."""
    (folder / OWNER).write_text(f"{socket.gethostname()} {os.getpid()}\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def _dead_here(folder: Path) -> bool:
    """Whether the process that ran in ``folder`` is known dead: it ran on this machine and is gone. A run on
    another machine (a shared filesystem) may be alive: it is left alone."""
    try:
        host, pid = (folder / OWNER).read_text().split()
    except (OSError, ValueError):
        return False
    return host == socket.gethostname() and pid.isdigit() and not _alive(int(pid))


def sweep_stale_writes(*roots: Path) -> list[Path]:
    """Remove the temporary checkpoint files (``.last.ckpt.<pid>.tmp``) that runs killed mid-write left in the
    ``checkpoints`` folders of their runs under ``roots``; return them."""
    removed = []
    for folder in {run for root in roots for run in versions(root)}:
        if (folder / CHECKPOINTS).is_dir() and _dead_here(folder):
            for tmp in (folder / CHECKPOINTS).glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed


def latest_checkpoint(root: Path) -> Path | None:
    """The newest checkpoint of any fit under ``root`` (``--ckpt_path last``), ``last.ckpt`` on a tie."""
    found = [p for run in versions(root) for p in (run / CHECKPOINTS).glob("*.ckpt")]
    return max(found, key=lambda p: (p.stat().st_mtime, p.name == "last.ckpt"), default=None)


def _latest_version(link: Path) -> int | None:
    if link.is_symlink():
        return _version(Path(os.readlink(link)))
    if link.is_file():
        return _version(Path(link.read_text().strip()))
    return None


def point_latest(run: Path) -> Path:
    """Make ``<root>/latest`` name ``run``, unless it names a newer version already (a fit started later)."""
    link = run.parent / LATEST
    current = _latest_version(link)
    if current is not None and current > (_version(run) or 0):
        return link
    tmp = run.parent / f".{LATEST}.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    try:
        tmp.symlink_to(run.name, target_is_directory=True)
    except OSError:  # no symbolic links here (Windows without the privilege): a file naming the folder
        tmp.write_text(f"{run.name}\n")
    os.replace(tmp, link)  # atomic: a reader sees the old or the new one
    return link


def resolve(path: str) -> str:
    """``path`` with a ``latest`` that is a file (where links are not allowed) replaced by the folder it names."""
    parts = Path(path).parts
    for index, part in enumerate(parts):
        named = Path(*parts[: index + 1])
        if part == LATEST and named.is_file():
            return str(Path(*parts[:index], named.read_text().strip(), *parts[index + 1 :]))
    return path


def shown(path: str | os.PathLike) -> str:
    """``path`` as a user would type it: relative to the working directory when inside it."""
    path = Path(path).absolute()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
