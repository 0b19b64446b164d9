"""``radford shards``: WebDataset shards of image-caption pairs, from a folder or a CSV, for ``PairData``."""

from __future__ import annotations

from collections.abc import Sequence

from radford.cli import ArgumentParser
from radford.io import writing


def main(args: Sequence[str]) -> None:
    """Write image-caption WebDataset shards (image + txt) from a filepath,caption CSV or a captioned image folder."""
    parser = ArgumentParser(prog="radford shards", description=main.__doc__)
    parser.add_argument(
        "source",
        help="a CSV with columns filepath,caption, or a folder of images each with a .txt caption of the same name",
    )
    parser.add_argument("pattern", help="the shards to write, with a %%-format for their number: out/train-%%06d.tar")
    parser.add_argument("--maxcount", type=int, default=10000, help="samples per shard")
    options = parser.parse_args(args)
    from radford.data.shards import write_pair_shards

    with writing(options.pattern):
        written = write_pair_shards(options.source, options.pattern, options.maxcount)
    print(f"wrote {len(written)} shards, {written[0]} to {written[-1]}")
