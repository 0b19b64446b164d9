"""Grey images as iGPT reads them: pixels in raster order, each the id of its nearest palette colour.

The default source is embedded: scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels), which ship with
scikit-learn, so ``radford fit --recipe igpt-digits`` downloads nothing. They stay 8x8: upsampling would add no
information, only a 4x longer sequence (16x the attention), and the point of the recipe is minutes on a CPU.
A CSV of 8-bit images (MNIST's ``mnist_5k.csv.gz``) is the other source.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from PIL import Image
from radford.api import RadfordError, dataset_path, resize_center_crop, to_tensor
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

from radford_igpt.model import with_start
from radford_igpt.palette import Palette

DIGITS = "digits"
SPLITS = ("train", "val", "test")


def read_images(source: str) -> tuple[np.ndarray, np.ndarray]:
    """8-bit grey images ``(N, H, W)`` and their labels ``(N,)``: ``digits``, or a CSV with one image a row
    (height x width values 0-255 in raster order, then the label), gzipped or not."""
    if source == DIGITS:
        digits = load_digits()
        return np.round(digits.images * (255 / 16)).astype(np.uint8), digits.target
    path = dataset_path(source)
    if not path.is_file():
        raise RadfordError(
            f"image source {source!r} not found: give {DIGITS!r}, the dataset 'mnist', or a CSV file of images"
        )
    try:
        rows = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as error:
        raise RadfordError(f"cannot read {source}: expected comma-separated integers ({error})") from error
    side = int(round((rows.shape[1] - 1) ** 0.5))
    if side * side != rows.shape[1] - 1 or not 0 <= rows[:, :-1].min() <= rows[:, :-1].max() <= 255:
        raise RadfordError(
            f"{source} has rows of {rows.shape[1]} values: expected a square image's values 0-255 then a label"
        )
    return rows[:, :-1].reshape(-1, side, side).astype(np.uint8), rows[:, -1]


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Grey images ``(N, H, W)`` bicubic-resized to ``(N, size, size)`` floats in [0, 1]."""
    return np.stack([to_tensor(resize_center_crop(Image.fromarray(image), size))[0].numpy() for image in images])


class PixelData(L.LightningDataModule):
    """Images as palette ids in raster order, for next-pixel prediction; splits drawn once from ``seed``.

    Args:
        source: ``digits`` (embedded) or a CSV of 8-bit grey images, one a row, then the label.
        image_size: side to resize the images to (bicubic); None keeps their size.
        tokenizer: the palette; default 8 colours. One that is not trained yet is fit to the training split.
        batch_size: images per batch.
        val_fraction: images held out for validation (and probe regularisation).
        test_fraction: images held out for testing (and probe accuracy), never trained on.
        seed: the split and the order of training batches.
        num_workers: loader worker processes.
    """

    def __init__(
        self,
        source: str = DIGITS,
        image_size: int | None = None,
        tokenizer: Palette | None = None,
        batch_size: int = 64,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if not (val_fraction > 0 and test_fraction > 0 and val_fraction + test_fraction < 1):
            raise RadfordError(
                f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be positive "
                "and sum to less than 1"
            )
        if image_size is not None and image_size < 2:
            raise RadfordError(f"image_size must be at least 2 (or None to keep the images' size), got {image_size}")
        self.source, self.image_size = source, image_size
        self.tokenizer = tokenizer if tokenizer is not None else Palette()
        self.batch_size, self.val_fraction, self.test_fraction = batch_size, val_fraction, test_fraction
        self.seed, self.num_workers = seed, num_workers
        self._splits: dict[str, tuple[np.ndarray, np.ndarray]] | None = None

    def pixels(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """A split's images ``(N, H, W, 1)`` as floats in [0, 1], resized, and its labels ``(N,)``."""
        if split not in SPLITS:
            raise RadfordError(f"unknown split {split!r}; choose from: {', '.join(SPLITS)}")
        if self._splits is None:
            images, labels = read_images(self.source)
            pixels = resize(images, self.image_size) if self.image_size else images / np.float32(255)
            order = np.random.default_rng(self.seed).permutation(len(images))
            n_test, n_val = round(len(order) * self.test_fraction), round(len(order) * self.val_fraction)
            parts = dict(zip(SPLITS, np.split(order, [len(order) - n_test - n_val, len(order) - n_test]), strict=True))
            self._splits = {name: (pixels[index, :, :, None], labels[index]) for name, index in parts.items()}
        return self._splits[split]

    def palette(self) -> Palette:
        """The palette, fit to the training split's pixels first if it is not trained yet."""
        if self.tokenizer.needs_training:
            self.tokenizer.train(self.pixels("train")[0].reshape(-1, 1))
        return self.tokenizer

    @property
    def vocab_size(self) -> int:
        """The palette's colours: the model's vocabulary."""
        return self.palette().vocab_size

    @property
    def sequence_length(self) -> int:
        """Pixels per image: what the model's block_size must be."""
        return int(np.prod(self.pixels("train")[0].shape[1:3]))

    def split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """A split's palette ids ``(N, H * W)`` in raster order, and its labels ``(N,)``."""
        pixels, labels = self.pixels(split)
        ids = self.palette().encode(pixels).reshape(len(pixels), -1)
        return torch.from_numpy(ids).long(), torch.from_numpy(np.asarray(labels)).long()

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        ids, _ = self.split(split)
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            TensorDataset(with_start(ids), ids),
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=generator,
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
