"""Images to tensors with Pillow alone (torchvision has no CPU build here): decode, resize, crop, scale.

CLIP and DCGAN both read images this way; CLIP then normalises with its own channel statistics.
"""

from __future__ import annotations

import io
import os
from typing import Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from radford.errors import RadfordError

Mode = Literal["RGB", "L"]


def open_image(source: str | os.PathLike | bytes, mode: Mode = "RGB", name: str | None = None) -> Image.Image:
    """Decode a file or encoded bytes (anything Pillow reads) to ``mode``; a file that fails is one clear error."""
    label = name or (f"{len(source)} bytes" if isinstance(source, bytes) else str(source))
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            return image.convert(mode)
    except FileNotFoundError as error:
        raise RadfordError(f"image {label} not found") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise RadfordError(f"cannot decode image {label}: {error}") from error


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
