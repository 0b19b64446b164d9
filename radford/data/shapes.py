"""An embedded image-caption dataset: coloured shapes of two sizes at five positions on pale backgrounds, each with a
caption from one of many templates, drawn with Pillow from a seed (nothing to download, the same on every machine).

Some colour-shape combinations never appear in training (``HELD_OUT``) although each colour and each shape does, so
a contrastive model's zero-shot transfer to unseen combinations can be measured as the CLIP paper measures transfer
(section 3.1): the ``heldout`` split holds only those combinations, ``train`` and ``val`` only the others.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

from radford.errors import RadfordError

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 160, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 200, 20),
    "purple": (140, 40, 170),
    "orange": (245, 130, 20),
}
SHAPES = ("circle", "square", "triangle", "diamond", "star")
SIZES = {"small": (0.12, 0.16), "large": (0.22, 0.28)}  # radius as a fraction of the image side
POSITIONS = {"left": (0.27, 0.5), "right": (0.73, 0.5), "top": (0.5, 0.27), "bottom": (0.5, 0.73), "center": (0.5, 0.5)}
WHERE = {
    "left": ["on the left", "at the left"],
    "right": ["on the right", "at the right"],
    "top": ["at the top", "near the top"],
    "bottom": ["at the bottom", "near the bottom"],
    "center": ["in the center", "in the middle"],
}
# Unseen in training: one per colour, every shape still seen in other colours.
HELD_OUT = frozenset(
    {
        ("red", "circle"),
        ("green", "square"),
        ("blue", "triangle"),
        ("yellow", "diamond"),
        ("purple", "star"),
        ("orange", "circle"),
    }
)
TEMPLATES = (
    "a {size} {colour} {shape} {where}.",
    "a photo of a {colour} {shape}.",
    "a {colour} {shape} {where}",
    "there is a {size} {colour} {shape} {where} of the picture.",
    "{where}, a {colour} {shape}.",
    "a picture of a {size} {shape}, coloured {colour}.",
    "an image of a {colour} {shape}",
    "a drawing of a {size} {colour} {shape}.",
    "{colour} {shape}, {size}, {where}",
    "the {shape} is {colour} and {size}.",
    "a {shape} in {colour} {where}.",
    "a simple {colour} {shape} on a plain background.",
)
Split = Literal["train", "val", "heldout"]
SPLITS: dict[str, int] = {"train": 0, "val": 1, "heldout": 2}  # each split draws from its own random stream


def combinations(split: Split) -> list[tuple[str, str]]:
    """The (colour, shape) pairs a split draws from: the held-out ones for ``heldout``, the others otherwise."""
    pairs = [(colour, shape) for colour in COLOURS for shape in SHAPES]
    return [pair for pair in pairs if (pair in HELD_OUT) == (split == "heldout")]


def class_names(split: Split | None = None) -> list[str]:
    """``"colour shape"`` names: of one split's combinations, or of all of them."""
    pairs = combinations(split) if split else [(c, s) for c in COLOURS for s in SHAPES]
    return [f"{colour} {shape}" for colour, shape in pairs]


@dataclass(frozen=True)
class Sample:
    colour: str
    shape: str
    size: str
    position: str
    caption: str

    @property
    def label(self) -> str:
        return f"{self.colour} {self.shape}"


def _polygon(shape: str, cx: float, cy: float, r: float, turn: float) -> list[tuple[float, float]]:
    corners = {"square": (4, math.pi / 4), "triangle": (3, -math.pi / 2), "diamond": (4, 0.0)}
    if shape == "star":  # ten corners alternating between the outer and an inner radius
        angles = [turn - math.pi / 2 + i * math.pi / 5 for i in range(10)]
        radii = [r if i % 2 == 0 else 0.45 * r for i in range(10)]
        return [(cx + q * math.cos(a), cy + q * math.sin(a)) for q, a in zip(radii, angles, strict=True)]
    n, start = corners[shape]
    if shape == "diamond":  # taller than wide, so that it is not a turned square
        return [
            (cx + 0.7 * r * math.cos(start + i * math.pi / 2), cy + r * math.sin(start + i * math.pi / 2))
            for i in range(4)
        ]
    angles = [start + turn + 2 * math.pi * i / n for i in range(n)]
    return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in angles]


class Shapes:
    """``num_samples`` image-caption pairs of one split; pair ``i`` is a function of ``(seed, split, i)`` alone."""

    def __init__(self, split: Split = "train", num_samples: int = 20000, image_size: int = 64, seed: int = 0) -> None:
        if split not in SPLITS:
            raise RadfordError(f"shapes split {split!r} does not exist; choose from: {', '.join(SPLITS)}")
        if num_samples < 1 or image_size < 16:
            raise RadfordError(
                f"shapes needs num_samples >= 1 and image_size >= 16, got {num_samples} and {image_size}"
            )
        self.split, self.num_samples, self.image_size, self.seed = split, num_samples, image_size, seed
        self.pairs = combinations(split)

    def __len__(self) -> int:
        return self.num_samples

    def _rng(self, index: int) -> np.random.Generator:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"sample {index} of {self.num_samples}")
        return np.random.default_rng([self.seed, SPLITS[self.split], index])

    def sample(self, index: int) -> Sample:
        """The attributes and caption of pair ``index``."""
        rng = self._rng(index)
        colour, shape = self.pairs[rng.integers(len(self.pairs))]
        size, position = rng.choice(list(SIZES)), rng.choice(list(POSITIONS))
        template = TEMPLATES[rng.integers(len(TEMPLATES))]
        where = WHERE[position][rng.integers(2)]
        caption = template.format(size=size, colour=colour, shape=shape, where=where)
        caption = re.sub(r"\ba (?=[aeiou])", "an ", caption)
        return Sample(colour, shape, str(size), str(position), caption[0].upper() + caption[1:])

    def image(self, index: int) -> Image.Image:
        """Pair ``index``'s picture, drawn at twice the size and reduced, for smooth edges."""
        sample = self.sample(index)
        rng = np.random.default_rng([self.seed, SPLITS[self.split], index, 1])  # drawing, apart from attributes
        side = 2 * self.image_size
        background = tuple(int(v) for v in rng.integers(200, 256, size=3))
        image = Image.new("RGB", (side, side), background)
        draw = ImageDraw.Draw(image)
        radius = side * rng.uniform(*SIZES[sample.size])
        x, y = POSITIONS[sample.position]
        cx, cy = side * (x + rng.uniform(-0.04, 0.04)), side * (y + rng.uniform(-0.04, 0.04))
        fill = tuple(int(np.clip(v + rng.integers(-25, 26), 0, 255)) for v in COLOURS[sample.colour])
        if sample.shape == "circle":
            draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=fill)
        else:
            draw.polygon(_polygon(sample.shape, cx, cy, radius, rng.uniform(-0.2, 0.2)), fill=fill)
        return image.resize((self.image_size, self.image_size), Image.BICUBIC)

    def __getitem__(self, index: int) -> tuple[Image.Image, str]:
        return self.image(index), self.sample(index).caption


def write_folder(folder: str | Path, shapes: Shapes) -> Path:
    """Write ``shapes`` as PNGs in one sub-folder per ``colour shape`` class (the layout ``radford zeroshot``
    reads labels from) and ``captions.csv`` of ``filepath,caption`` (the CSV ``PairData`` trains on)."""
    folder = Path(folder)
    rows = []
    for index in range(len(shapes)):
        sample = shapes.sample(index)
        path = Path(sample.label) / f"{shapes.split}-{index:06d}.png"
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        shapes.image(index).save(folder / path)
        rows.append({"filepath": str(path), "caption": sample.caption})
    with open(folder / "captions.csv", "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=["filepath", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    return folder / "captions.csv"


__all__ = [
    "COLOURS",
    "HELD_OUT",
    "SHAPES",
    "TEMPLATES",
    "Sample",
    "Shapes",
    "class_names",
    "combinations",
    "write_folder",
]
