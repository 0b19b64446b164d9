"""Image completions as in the iGPT paper's figure 1: the top half of held-out images given, the bottom half
sampled pixel by pixel, several samples per image.

    python -m radford_igpt.complete --checkpoint runs/igpt-digits/version_0/checkpoints/last.ckpt --out digits.png
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from radford.api import RadfordError, load

from radford_igpt.data import DIGITS, PixelData
from radford_igpt.model import IGPT
from radford_igpt.palette import Palette

HIDDEN = 0.35  # the grey that stands for pixels the model was not shown
GAP = 2  # pixels of white between cells


def beside_run(checkpoint: str, name: str) -> Path:
    """``name`` in the run folder of a checkpoint that ``radford fit`` wrote (``<run>/checkpoints/last.ckpt``, also
    through ``runs/<recipe>/latest``), else beside the checkpoint: where radford's own commands put what they make of
    a checkpoint, rather than the working directory, which is often a checkout."""
    path = Path(checkpoint).resolve()
    return (path.parent.parent if path.parent.name == "checkpoints" else path.parent) / name


def load_model(checkpoint: str) -> IGPT:
    model = load(checkpoint)
    if not isinstance(model, IGPT):
        raise RadfordError(f"{checkpoint} holds a {type(model).__name__}, not an iGPT model")
    return model


def data_for(model: IGPT, source: str) -> PixelData:
    """Images from ``source`` at the model's size, encoded with the model's own palette."""
    side = math.isqrt(model.hparams.block_size)
    return PixelData(source, image_size=side, tokenizer=Palette.from_centers(model.palette.cpu().numpy()))


def completion_grid(
    model: IGPT, ids: torch.Tensor, samples: int = 4, scale: int = 4, seed: int = 0, temperature: float = 1.0
) -> Image.Image:
    """One row per image of ids ``(N, side * side)``: the given top half (the rest grey), ``samples``
    completions, then the original; upscaled ``scale`` times."""
    side = math.isqrt(ids.shape[1])
    given = (side // 2) * side  # whole rows: the top half
    generator = torch.Generator().manual_seed(seed)
    completions = [model.complete(ids, given, temperature=temperature, generator=generator) for _ in range(samples)]
    palette = Palette.from_centers(model.palette.cpu().numpy())
    half = palette.decode(ids.numpy())[..., 0]
    half[:, given:] = HIDDEN
    columns = [half, *(palette.decode(c.numpy())[..., 0] for c in completions), palette.decode(ids.numpy())[..., 0]]
    cell = side * scale + GAP
    canvas = np.ones((len(ids) * cell + GAP, len(columns) * cell + GAP), dtype=np.float32)
    for column, images in enumerate(columns):
        for row, image in enumerate(images.reshape(-1, side, side)):
            top, left = GAP + row * cell, GAP + column * cell
            canvas[top : top + side * scale, left : left + side * scale] = np.kron(image, np.ones((scale, scale)))
    return Image.fromarray(np.round(canvas.clip(0, 1) * 255).astype(np.uint8))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m radford_igpt.complete", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a .ckpt that radford fit wrote for an igpt recipe")
    parser.add_argument("--source", default=DIGITS, help=f"{DIGITS!r} or a CSV of images (as the data module)")
    parser.add_argument("--images", type=int, default=8, help="held-out images to complete, from the test split")
    parser.add_argument("--samples", type=int, default=4, help="completions of each image")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--out", required=True, help="the PNG to write")
    options = parser.parse_args(argv)
    try:
        model = load_model(options.checkpoint)
        ids, _ = data_for(model, options.source).split("test")
        grid = completion_grid(
            model, ids[: options.images], options.samples, seed=options.seed, temperature=options.temperature
        )
    except RadfordError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        sys.exit(2)
    grid.save(options.out)
    print(f"wrote {options.out}")


if __name__ == "__main__":
    main()
