"""``radford convert``: a radford checkpoint to a Hugging Face folder, or back."""

from __future__ import annotations

from collections.abc import Sequence

from radford.cli import ArgumentParser


def main(args: Sequence[str]) -> None:
    """Convert a radford .ckpt to a Hugging Face folder, or a Hugging Face GPT folder to a .ckpt."""
    parser = ArgumentParser(prog="radford convert", description=main.__doc__)
    parser.add_argument("src", help="a radford .ckpt file, or a Hugging Face GPT-2 or GPT-1 (openai-gpt) folder")
    parser.add_argument("dst", help="the Hugging Face folder, or the .ckpt file, to write")
    options = parser.parse_args(args)
    # Imported here, for start-up speed: `radford --help` imports every command module for its summary.
    from radford.checkpoints import convert

    print(f"wrote {convert(options.src, options.dst)}")
