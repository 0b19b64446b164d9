"""Zero-shot transfer of ``clip-tiny`` to colour-shape combinations it never saw, and a linear probe on its features.

``radford fit --recipe clip-tiny`` trains a tiny ViT CLIP on the embedded shapes dataset, whose training captions
never pair six colour-shape combinations (``radford.data.shapes.HELD_OUT``: red circle, green square, ...), although
every colour and every shape occurs. Images of those six combinations are written to a folder, one sub-folder per
class, and ``radford zeroshot`` classifies them among all 30 colour-shape names from prompts alone, as a user would
run it; the same for images of combinations seen in training. Chance is 1 in 30. Then a linear probe (logistic
regression, C chosen on a validation split; ``radford.eval.probe``) on the frozen image features classifies the 24
seen combinations, against the same probe on raw pixels. Every command is a subprocess; the script prints them and a
table. About 15 minutes on 2 busy CPU cores.

    python benchmarks/clip_tiny_zeroshot.py                    # work files in a temporary folder
    python benchmarks/clip_tiny_zeroshot.py --work /tmp/clip --max_steps 200   # a quick look
    python benchmarks/clip_tiny_zeroshot.py --checkpoint runs/clip-tiny/version_0/checkpoints/last.ckpt  # no training
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from run_radford import run_radford

REPO = Path(__file__).resolve().parents[1]
RECIPE = "clip-tiny"
TEMPLATES = ("a photo of a {}.", "a {}.", "an image of a {}.", "a picture of a {}.")
FIGURE = REPO / "docs" / "images" / "clip-tiny-zeroshot.png"


def zeroshot(checkpoint: Path, images: Path, cwd: Path) -> tuple[float, list[tuple[str, str]]]:
    from radford.data.shapes import class_names

    output = run_radford(
        [
            "zeroshot",
            "--checkpoint",
            str(checkpoint),
            "--images",
            str(images),
            "--classes",
            *class_names(),
            "--templates",
            *TEMPLATES,
        ],
        cwd,
    ).stdout
    accuracy = float(re.search(r"^accuracy ([0-9.]+)", output, re.MULTILINE).group(1))
    predictions = [tuple(line.split("\t")[:2]) for line in output.splitlines() if "\t" in line]
    return accuracy, predictions


def probe(checkpoint: Path, image_size: int) -> dict[str, float]:
    """Linear-probe accuracy on the 24 seen combinations: CLIP's frozen image features against raw pixels (at
    12 x 12, which a probe fits in seconds)."""
    import radford
    from radford.data.pairs import Preprocess
    from radford.data.shapes import Shapes
    from radford.eval.probe import linear_probe

    model = radford.load(checkpoint)
    preprocess = Preprocess(image_size)
    # Fresh images: the training split's stream under another seed, and the validation split halved.
    splits = {"train": Shapes("train", 3000, image_size, seed=1), "val": Shapes("val", 1200, image_size)}
    data = {}
    for name, shapes in splits.items():
        pixels = torch.stack([preprocess(shapes.image(i)) for i in range(len(shapes))])
        labels = np.array([shapes.sample(i).label for i in range(len(shapes))])
        with torch.no_grad():
            features = torch.cat([model.features(chunk) for chunk in pixels.split(256)]).numpy()
        small = torch.nn.functional.adaptive_avg_pool2d(pixels, 12).flatten(1).numpy()
        data[name] = (features, small, labels)
    half = len(splits["val"]) // 2
    results = {}
    for column, name in ((0, "CLIP image features"), (1, "raw pixels (12 x 12)")):
        train = (data["train"][column], data["train"][2])
        val = (data["val"][column][:half], data["val"][2][:half])
        test = (data["val"][column][half:], data["val"][2][half:])
        result = linear_probe(train, val, test)
        results[name] = result.test_accuracy
        print(f"  probe on {name}: C={result.C:g}, val {result.val_accuracy:.3f}, test {result.test_accuracy:.3f}")
    return results


def figure(images: Path, predictions: list[tuple[str, str]], path: Path, count: int = 24) -> None:
    """A grid of held-out images, each with the class zero-shot picked (green when right, red when wrong)."""
    cell, label = 96, 14
    rows = (count + 7) // 8
    grid = Image.new("RGB", (8 * cell, rows * (cell + label)), "white")
    draw = ImageDraw.Draw(grid)
    step = max(1, len(predictions) // count)
    for k, (file, predicted) in enumerate(predictions[::step][:count]):
        x, y = (k % 8) * cell, (k // 8) * (cell + label)
        grid.paste(Image.open(file).convert("RGB").resize((cell, cell), Image.NEAREST), (x, y))
        right = Path(file).parent.name == predicted
        draw.text((x + 2, y + cell + 1), predicted, fill=(0, 130, 0) if right else (200, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="folder for the run and the images (default: a temporary one)")
    parser.add_argument("--max_steps", type=int, help="override the recipe's training steps")
    parser.add_argument("--checkpoint", type=Path, help="evaluate this clip-tiny checkpoint instead of training")
    parser.add_argument("--images", type=int, default=600, help="images of held-out (and of seen) combinations")
    parser.add_argument("--figure", action="store_true", help=f"write {FIGURE.relative_to(REPO)}")
    options = parser.parse_args()
    from radford.data.shapes import HELD_OUT, Shapes, write_folder

    work = options.work or Path(tempfile.mkdtemp(prefix="clip-tiny-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"load average {os.getloadavg()[0]:.1f}; work files in {work}")
    train_time = None
    checkpoint = options.checkpoint
    if checkpoint is None:
        steps = ["--trainer.max_steps", str(options.max_steps)] if options.max_steps else []
        train_time = run_radford(["fit", "--recipe", RECIPE, *steps], work).seconds
        checkpoint = sorted((work / "runs" / RECIPE).glob("version_*/checkpoints/last.ckpt"))[-1]
    checkpoint = checkpoint.resolve()
    hparams = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)["hyper_parameters"]
    image_size = hparams["image_size"]

    held_out, seen = work / "heldout", work / "seen"
    write_folder(held_out, Shapes("heldout", options.images, image_size, seed=7))
    write_folder(seen, Shapes("val", options.images, image_size, seed=7))
    held_out_accuracy, predictions = zeroshot(checkpoint, held_out, work)
    seen_accuracy, _ = zeroshot(checkpoint, seen, work)
    probes = probe(checkpoint, image_size)
    if options.figure:
        figure(held_out, predictions, FIGURE)

    print()
    if train_time is not None:
        print(f"training: {train_time / 60:.1f} min wall ({checkpoint})")
    print(f"held-out combinations: {', '.join(' '.join(pair) for pair in sorted(HELD_OUT))}")
    print("| evaluation | images | classes | accuracy | chance |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| zero-shot, held-out combinations | {options.images} | 30 | {held_out_accuracy:.1%} | {1 / 30:.1%} |")
    print(f"| zero-shot, combinations seen in training | {options.images} | 30 | {seen_accuracy:.1%} | {1 / 30:.1%} |")
    for name, accuracy in probes.items():
        print(f"| linear probe on {name}, seen combinations | 600 | 24 | {accuracy:.1%} | {1 / 24:.1%} |")


if __name__ == "__main__":
    main()
