"""Corpus preparation speed: tokenizing text into radford's token cache on every core against one.

``TextData.prepare_data`` reads the sources, cuts documents at safe places and hands batches of pieces to the
tokenizer's parallel encoder, then writes the ids as a memmap. Each run is a fresh process with an empty cache
(the file cache is warmed by an untimed first run); the one-core runs set ``RAYON_NUM_THREADS=1`` (the encoder's
thread pool). Runs alternate all-cores and one-core; the table gives the median MB/s of each and their ratio.

    python benchmarks/corpus_preparation.py                        # the standard library's source, GPT-2's BPE
    python benchmarks/corpus_preparation.py --sources ../shared/datasets/tinyshakespeare.txt --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RADFORD_TEST_DATA", REPO.parent / "shared"))

WORKER = """
import sys, time
from radford.data import corpus
from radford.data.text import TextData
from radford.tokenizers import GPT2BPE
data = TextData(sources=sys.argv[1].split(","), tokenizer=GPT2BPE(sys.argv[2]), cache_dir=sys.argv[3])
files = corpus.resolve(data.sources)
start = time.perf_counter()
data.prepare_data()
print(time.perf_counter() - start, sum(f.stat().st_size for f in files), len(data.tokens))
"""


def prepare(sources: str, vocabulary: Path, threads: int | None) -> tuple[float, int, int]:
    """Seconds, bytes and tokens of one preparation in a fresh process and cache."""
    env = {**os.environ, **({"RAYON_NUM_THREADS": str(threads)} if threads else {})}
    with tempfile.TemporaryDirectory() as cache:
        out = subprocess.run(
            [sys.executable, "-c", WORKER, sources, str(vocabulary), cache],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
    return float(out[0]), int(out[1]), int(out[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", default="stdlib", help="comma-separated files, folders, globs, or stdlib")
    parser.add_argument(
        "--vocabulary", type=Path, default=SHARED / "assets" / "gpt2", help="GPT-2's encoder.json + vocab.bpe (folder)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.vocabulary.exists():
        sys.exit(f"{args.vocabulary} not found: set RADFORD_TEST_DATA or --vocabulary")
    prepare(args.sources, args.vocabulary, None)  # untimed: warms the file cache
    cores = os.cpu_count() or 1
    seconds: dict[str, list[float]] = {f"all {cores} cores": [], "one core": []}
    for _ in range(args.repeats):
        for name, threads in zip(seconds, (None, 1), strict=True):
            elapsed, size, tokens = prepare(args.sources, args.vocabulary, threads)
            seconds[name].append(elapsed)
    print(
        f"{args.sources}: {size / 1e6:.1f} MB, {tokens:,} GPT-2 tokens; median of {args.repeats}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print("\n| encoder threads | seconds | MB/s | tokens/s | speed-up |")
    print("| --- | --- | --- | --- | --- |")
    one = statistics.median(seconds["one core"])
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {size / 1e6 / median:.2f} | {tokens / median:,.0f} | {one / median:.2f} |")


if __name__ == "__main__":
    main()
