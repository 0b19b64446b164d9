"""WebDataset shards: tar files of samples whose files share a key (``000042.jpg`` + ``000042.txt``), read as a stream
(the format CLIP-scale image-text data comes in) and written from a folder or a CSV.

``read_shards`` builds the stream: brace-expanded URLs or local paths, split across processes and loader workers,
resampled with replacement (every process sees an endless stream, so DDP ranks never run out unevenly) or read once
in order, shuffled through a buffer, decoded and batched on the loader workers. A sample that fails to decode is
reported as one warning line naming its shard and key, and skipped; a run does not stop for one bad image.
"""

from __future__ import annotations

import csv
import io
import logging
import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import webdataset as wds
from webdataset.shardlists import expand_urls
from webdataset.utils import pytorch_worker_info

from radford.errors import RadfordError

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp")
log = logging.getLogger(__name__)


class CorruptSample(Exception):
    """A sample that could not be decoded; its message names the shard and the key."""


def report_and_skip(error: Exception) -> bool:
    """A WebDataset handler: log one line for a sample (or the rest of a shard) that fails, and go on."""
    if isinstance(error, CorruptSample):
        log.warning("skipping %s", error)
    else:  # an unreadable tar: webdataset appends the stream and the URL to the error's arguments
        url = error.args[-1] if error.args else "?"
        log.warning("skipping the rest of shard %s: %s", url, error.args[0] if len(error.args) > 2 else error)
    return True


def shard_urls(urls: str | Sequence[str]) -> list[str]:
    """``urls`` brace-expanded (``data/{000..009}.tar``, ``::`` between lists); local files must exist."""
    expanded = [url for item in ([urls] if isinstance(urls, str) else urls) for url in expand_urls(item)]
    if not expanded:
        raise RadfordError(f"no shards in {urls!r}")
    local = [url for url in expanded if not re.match(r"^[a-z][a-z0-9+]*:", url)]
    missing = [url for url in local if not Path(url).expanduser().is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise RadfordError(
            f"shard {missing[0]} not found{more}: give existing .tar files, e.g. "
            "'shards/train-{000000..000009}.tar', or http(s)://, pipe: URLs"
        )
    return [str(Path(url).expanduser()) if url in local else url for url in expanded]


class DecodeWatch:
    """Decodes samples, skipping those that fail, and stops a stream in which nothing decodes: without it, an endless
    (resampled) stream of shards that are corrupt, or whose samples lack the files asked for, loops for ever.

    ``shards`` counts the shards drawn and ``samples`` yields the decoded samples; once every shard could have been
    drawn twice over and still nothing decoded, or a finite stream ends so, it raises one line naming the shards and
    the files their samples hold.
    """

    def __init__(self, urls: Sequence[str], decode: Callable[[dict[str, Any]], Any]) -> None:
        self.urls, self.decode = urls, decode
        self.drawn = self.decoded = 0
        self.files_seen: set[str] = set()

    def shards(self, source: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for shard in source:
            self.drawn += 1
            if self.decoded == 0 and self.drawn > 2 * len(self.urls):
                self.fail()
            yield shard

    def samples(self, source: Iterable[dict[str, Any]]) -> Iterator[Any]:
        for sample in source:
            try:
                decoded = self.decode(sample)
            except (RadfordError, KeyError, ValueError, OSError, UnicodeDecodeError) as error:
                self.files_seen.update(key for key in sample if not key.startswith("__"))
                what = f"no {error}" if isinstance(error, KeyError) else str(error)
                report_and_skip(
                    CorruptSample(f"sample {sample.get('__key__')!r} of shard {sample.get('__url__')}: {what}")
                )
                continue
            self.decoded += 1
            yield decoded
        if self.decoded == 0:
            self.fail()

    def fail(self) -> None:
        shards = self.urls[0] + (f" and {len(self.urls) - 1} more" if len(self.urls) > 1 else "")
        found = ", ".join(sorted(self.files_seen)) or "no readable samples"
        raise RadfordError(
            f"no sample of {shards} decodes: the samples hold {found}; see the warnings above for why each was skipped"
        )


def _shuffled(buffer: int, seed: int) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """Shuffle through a buffer, seeded apart for each process and loader worker, afresh each epoch."""
    epoch = -1

    def stage(samples: Iterator[Any]) -> Iterator[Any]:
        nonlocal epoch
        epoch += 1
        rank, _, worker, _ = pytorch_worker_info()
        rng = random.Random(hash((seed, rank, worker, epoch)))
        return wds.shuffle(bufsize=buffer, initial=buffer, rng=rng)(samples)

    return stage


def read_shards(
    urls: str | Sequence[str],
    decode: Callable[[dict[str, Any]], Any],
    shuffle: int = 0,
    resample: bool = False,
    seed: int = 0,
    batch_size: int | None = None,
    collate: Callable[[list[Any]], Any] | None = None,
    partial: bool = True,
    batches_per_epoch: int | None = None,
) -> wds.DataPipeline:
    """A stream of ``decode(sample)`` for the samples of ``urls`` (a sample: ``{"__key__", "__url__", ext: bytes}``).

    resample: draw shards with replacement, endlessly, apart in each process and worker; otherwise each shard once,
        divided among processes and workers (which then may serve unequal numbers of samples).
    shuffle: buffer size for shuffling samples (0: in order). batch_size: ``collate`` lists of that many; ``partial``
        keeps a smaller last one. batches_per_epoch: what one loader worker serves in an epoch of an endless stream.
    """
    urls = shard_urls(urls)
    watch = DecodeWatch(urls, decode)
    shards = wds.ResampledShards(urls, seed=seed, deterministic=True) if resample else wds.SimpleShardList(urls)
    stages: list[Any] = [shards]
    if not resample:
        stages += [wds.split_by_node, wds.split_by_worker]
    stages += [watch.shards, wds.tarfile_to_samples(handler=report_and_skip)]
    if shuffle:
        stages.append(_shuffled(shuffle, seed))
    stages.append(watch.samples)
    if batch_size is not None:
        stages.append(wds.batched(batch_size, collation_fn=collate, partial=partial))
    pipeline = wds.DataPipeline(*stages)
    return pipeline.with_epoch(batches_per_epoch) if batches_per_epoch else pipeline


def write_shards(samples: Iterable[dict[str, Any]], pattern: str, maxcount: int = 10000) -> list[str]:
    """Write ``samples`` (``{"__key__": str, ext: bytes or str}``) to tar shards named by ``pattern`` (a
    %-format of the shard number, e.g. ``out/train-%06d.tar``), ``maxcount`` to a shard. Returns their paths."""
    if maxcount < 1:
        raise RadfordError(f"maxcount must be at least 1 sample a shard, got {maxcount}")
    if "%" not in pattern:
        raise RadfordError(f"shard pattern {pattern!r} needs a %-format for the shard number, e.g. 'train-%06d.tar'")
    Path(pattern).parent.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    try:
        with wds.ShardWriter(pattern, maxcount=maxcount, verbose=0, post=written.append) as sink:
            for sample in samples:
                sink.write(sample)
    except BaseException:
        # No shard of a failed run is kept (closing the writer listed the one it was in): a partial set read later
        # would be a smaller dataset that nothing marks as such.
        for name in written:
            Path(name).unlink(missing_ok=True)
        raise
    return written


def _key(path: Path) -> str:
    # WebDataset splits a file name at its first dot into key and extension; keys cannot hold dots or slashes.
    return re.sub(r"[^A-Za-z0-9_-]", "_", path.stem)


def _image_sample(path: Path, caption: str, key: str) -> dict[str, Any]:
    extension = path.suffix.lower().lstrip(".")
    return {"__key__": key, "jpg" if extension == "jpeg" else extension: path.read_bytes(), "txt": caption}


def pairs_from_csv(path: str | Path) -> list[tuple[Path, str]]:
    """The (image path, caption) rows of a CSV with columns ``filepath,caption``; relative paths are taken from the
    CSV's folder. An empty CSV, one with no rows, a row without both values, or text that is not UTF-8 is one line
    naming the file (and the line)."""
    path = Path(path)
    try:
        # Decoded whole: a text stream's decode error counts bytes from its last chunk, not from the file's start.
        # utf-8-sig: a spreadsheet's CSV often starts with a byte-order mark, which would hide the header's first name.
        data = path.read_bytes()
        text = data.decode("utf-8-sig")
    except FileNotFoundError as error:
        raise RadfordError(f"CSV {path} not found") from error
    except OSError as error:
        raise RadfordError(f"cannot read CSV {path}: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise RadfordError(
            f"CSV {path} is not UTF-8 text: byte {error.start} (line {line}) is 0x{data[error.start]:02x}; save it as "
            "UTF-8"
        ) from error
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None:
        raise RadfordError(f"CSV {path} is empty: expected a header filepath,caption, then one row per image")
    if not {"filepath", "caption"} <= set(reader.fieldnames):
        raise RadfordError(f"{path} needs the columns filepath,caption; its header is {reader.fieldnames}")
    pairs = []
    for row in reader:
        # A short row leaves a column None; an empty filepath would name the CSV's own folder.
        if not row["filepath"] or row["caption"] is None:
            raise RadfordError(
                f"{path} line {reader.line_num}: expected a filepath and a caption, got {list(row.values())}"
            )
        pairs.append((path.parent / row["filepath"], row["caption"]))
    if not pairs:
        raise RadfordError(f"CSV {path} has no rows under its header: expected one filepath,caption row per image")
    return pairs


def pairs_from_folder(folder: str | Path) -> list[tuple[Path, str]]:
    """The images of a folder (searched recursively) with the caption in the ``.txt`` file of the same name."""
    folder = Path(folder)
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS)
    pairs = [(image, image.with_suffix(".txt")) for image in images]
    missing = [str(caption) for _, caption in pairs if not caption.is_file()]
    if missing:
        raise RadfordError(f"{len(missing)} images of {folder} have no caption, e.g. {missing[0]}")
    if not pairs:
        raise RadfordError(f"no images in {folder}: looked for {', '.join(IMAGE_EXTENSIONS)} beside .txt captions")
    return [(image, caption.read_text(encoding="utf-8").strip()) for image, caption in pairs]


def _check_images(pairs: Sequence[tuple[Path, str]], source: Path) -> None:
    """Every image a source lists is a file radford reads, checked before the first shard is opened: a run that
    stopped part-way would leave shards that look like a smaller dataset."""
    for row, (image, _) in enumerate(pairs, 1):
        if image.suffix.lower().lstrip(".") not in IMAGE_EXTENSIONS:
            raise RadfordError(
                f"{source} data row {row}: {image} is not an image radford reads: extensions "
                f"{', '.join(IMAGE_EXTENSIONS)}"
            )
    missing = [(row, image) for row, (image, _) in enumerate(pairs, 1) if not image.is_file()]
    if missing:
        row, image = missing[0]
        raise RadfordError(
            f"{len(missing)} of the {len(pairs)} images {source} lists are not files, e.g. {image} (data row {row}); "
            "paths are relative to the CSV's folder"
        )


def write_pair_shards(source: str | Path, pattern: str, maxcount: int = 10000) -> list[str]:
    """Image-caption shards (``jpg``/``png``/... + ``txt``) from a ``filepath,caption`` CSV or a folder of images
    with ``.txt`` captions beside them; images are copied as they are, not re-encoded."""
    source = Path(source)
    pairs = pairs_from_csv(source) if source.suffix.lower() == ".csv" else pairs_from_folder(source)
    _check_images(pairs, source)
    # The index keeps keys unique; the file's name makes a warning about a corrupt sample findable.
    samples = (_image_sample(image, caption, f"{i:08d}_{_key(image)}") for i, (image, caption) in enumerate(pairs))
    return write_shards(samples, pattern, maxcount)


__all__ = [
    "IMAGE_EXTENSIONS",
    "CorruptSample",
    "pairs_from_csv",
    "pairs_from_folder",
    "read_shards",
    "report_and_skip",
    "shard_urls",
    "write_pair_shards",
    "write_shards",
]
