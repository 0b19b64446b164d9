"""``radford sample``: a grid of images from a trained DCGAN, or rows of walks through its latent space."""

from __future__ import annotations

from collections.abc import Sequence

from radford.cli import ArgumentParser
from radford.errors import RadfordError

GRID_SAMPLES = 64  # images in a grid of samples unless --num_samples says otherwise
INTERPOLATION_ROWS = 8  # walks in an interpolation grid unless --num_samples says otherwise


def main(args: Sequence[str]) -> None:
    """Write a grid of images from a trained DCGAN (.ckpt), or with --interpolate rows of latent walks."""
    parser = ArgumentParser(prog="radford sample", description=main.__doc__)
    parser.add_argument("--checkpoint", required=True, help="a .ckpt that radford fit wrote for a DCGAN")
    parser.add_argument("--out", required=True, help="the picture to write (.png, .jpg, ...)")
    parser.add_argument(
        "--num_samples",
        type=int,
        help=f"images in the grid (default {GRID_SAMPLES}); with "
        f"--interpolate, the walks, one per row (default {INTERPOLATION_ROWS})",
    )
    parser.add_argument(
        "--interpolate",
        action="store_true",
        help="each row walks in a straight line between two random points of the latent space (the paper's figure 4)",
    )
    parser.add_argument("--steps", type=int, default=10, help="images along each walk, its ends included")
    parser.add_argument("--seed", type=int, help="the same seed gives the same picture")
    options = parser.parse_args(args)
    number = options.num_samples
    if number is None:
        number = INTERPOLATION_ROWS if options.interpolate else GRID_SAMPLES
    if number < 1:
        raise RadfordError(f"--num_samples must be at least 1, got {number}")

    import torch

    from radford.checkpoints import load
    from radford.models.dcgan import DCGAN, image_format, image_grid, save_image

    image_format(options.out)  # a bad suffix fails before any work
    model = load(options.checkpoint)
    if not isinstance(model, DCGAN):
        raise RadfordError(
            f"{options.checkpoint} holds a {type(model).__name__}, which does not make images; "
            "give a DCGAN's checkpoint"
        )
    generator = None if options.seed is None else torch.Generator().manual_seed(options.seed)
    if options.interpolate:
        images, columns = model.interpolate(number, options.steps, generator), options.steps
    else:
        images, columns = model.sample(number, generator), None
    path = save_image(image_grid(images, columns), options.out)
    print(f"wrote {path}: {len(images)} images of {model.hparams.image_size}x{model.hparams.image_size}")
