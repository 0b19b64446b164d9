"""``radford convert``: a radford checkpoint (a .ckpt, or the sharded folder ``strategy/fsdp`` saves) to a Hugging Face
folder or one .ckpt, or a Hugging Face folder back."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from radford.cli import ArgumentParser
from radford.errors import RadfordError
from radford.io import writing


def check_destination(dst: Path, overwrite: bool) -> None:
    """Refuse a destination that holds something (a file, a folder with files): it may be the only copy of a run's
    weights, a resumable ``last.ckpt``."""
    if overwrite or not dst.exists() or (dst.is_dir() and not any(dst.iterdir())):
        return
    what = "a folder with files in it" if dst.is_dir() else "a file"
    raise RadfordError(
        f"{dst} exists ({what}): radford convert does not replace it; give another destination, or "
        "--overwrite to replace it"
    )


def main(args: Sequence[str]) -> None:
    """Convert a checkpoint (.ckpt, strategy/fsdp's sharded folder) to a Hugging Face folder or a .ckpt, and back.

    A radford .ckpt becomes a Hugging Face folder; a sharded checkpoint folder, gathered into one process, becomes
    a .ckpt or a Hugging Face folder; a Hugging Face GPT-2 or GPT-1 folder becomes a .ckpt."""
    parser = ArgumentParser(prog="radford convert", description=main.__doc__)
    parser.add_argument(
        "src",
        help="a radford .ckpt file, a sharded checkpoint folder (strategy/fsdp's last.ckpt/), or a Hugging Face GPT-2 "
        "or GPT-1 (openai-gpt) folder",
    )
    parser.add_argument(
        "dst", help="the Hugging Face folder, or the .ckpt file, to write; never an existing one unless --overwrite"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace what dst holds")
    options = parser.parse_args(args)
    dst = Path(options.dst).expanduser()
    check_destination(dst, options.overwrite)
    # Imported here, for start-up speed: `radford --help` imports every command module for its summary.
    from radford.checkpoints import convert

    with writing(dst):
        print(f"wrote {convert(options.src, dst)}")
