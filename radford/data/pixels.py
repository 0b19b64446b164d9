"""Images to tensors with Pillow alone (torchvision has no CPU build here): decode, resize, crop, scale.

CLIP and DCGAN both read images this way; CLIP then normalises with its own channel statistics. A dataset of many
images skips the few that do not decode (``DecodeFailures``), as webdataset's ``warn_and_continue`` does for shards.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from functools import partial
from typing import Literal, TypeVar

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from radford.errors import RadfordError

Mode = Literal["RGB", "L"]
T = TypeVar("T")
JUDGED_AFTER = 64  # images tried before most of them failing stops a run (or all of a smaller dataset)
log = logging.getLogger(__name__)


class UndecodableImage(RadfordError):
    """An image file that is missing or that Pillow cannot decode."""


def open_image(source: str | os.PathLike | bytes, mode: Mode = "RGB", name: str | None = None) -> Image.Image:
    """Decode a file or encoded bytes (anything Pillow reads) to ``mode``; a file that fails is one clear error."""
    label = name or (f"{len(source)} bytes" if isinstance(source, bytes) else str(source))
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            return image.convert(mode)
    except FileNotFoundError as error:
        raise UndecodableImage(f"image {label} not found") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise UndecodableImage(f"cannot decode image {label}: {error}") from error


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Bicubic resize of the shorter side to ``size``, then the centred ``size`` x ``size`` square (as CLIP does)."""
    width, height = image.size
    scale = size / min(width, height)
    resized = image.resize((max(size, round(width * scale)), max(size, round(height * scale))), Image.BICUBIC)
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    return resized.crop((left, top, left + size, top + size))


def to_tensor(image: Image.Image) -> Tensor:
    """A ``(channels, height, width)`` float tensor in [0, 1]."""
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255)


def normalize(pixels: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """Per-channel ``(pixels - mean) / std`` for a ``(..., channels, height, width)`` tensor."""
    shape = (-1, 1, 1)
    return (pixels - torch.tensor(mean).view(shape)) / torch.tensor(std).view(shape)


class DecodeFailures:
    """Skips the images of ``source`` that do not decode, one counted warning each, and stops in one line once most of
    those tried fail: after ``JUDGED_AFTER`` tries (or as many as ``source`` holds, if fewer), more than half.

    Each loader worker counts the images it tries: its copy of the dataset holds its own ``DecodeFailures``.
    """

    def __init__(self, source: str, count: int) -> None:
        self.source, self.count = source, count
        self.tried = self.failed = 0

    def attempt(self, load: Callable[[], T]) -> T | None:
        """``load()``, or None (warned and counted) when its image does not decode."""
        self.tried += 1
        try:
            return load()
        except UndecodableImage as error:
            self.failed += 1
            if self.tried >= min(JUDGED_AFTER, self.count) and 2 * self.failed > self.tried:
                raise RadfordError(
                    f"most images of {self.source} do not decode: {self.failed} of the {self.tried} tried, e.g. {error}"
                ) from error
            log.warning("skipping %s (%d of %d images tried so far failed)", error, self.failed, self.tried)
            return None

    def first(self, index: int, load: Callable[[int], T]) -> T:
        """``load(i)`` for the first of ``index``, ``index + 1``, ... (around to ``index - 1``) whose image decodes:
        a map-style dataset serves a neighbour in place of an image that does not decode, so batches stay full."""
        for step in range(self.count):
            item = self.attempt(partial(load, (index + step) % self.count))
            if item is not None:
                return item
        raise RadfordError(f"no image of {self.source} decodes any more")
