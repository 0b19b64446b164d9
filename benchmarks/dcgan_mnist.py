"""DCGAN on MNIST-5k, measured as the paper measures a GAN: how close its samples come to real digits, and how good
its discriminator's features are as a representation (section 5.1).

1. ``radford fit --recipe dcgan-mnist`` trains on the 5,000 digits of ``mnist_5k.csv.gz`` (no labels), as a user
   would run it; ``radford sample`` then writes a grid and a latent walk from the last checkpoint.
2. Frechet distance (``radford.eval.frechet``) on the features of a small digit classifier trained here on 4,000 of
   the digits (its accuracy on the other 1,000 is printed): 2,500 real digits against 2,500 samples of the trained
   generator, of the same generator untrained, and of the other 2,500 real digits (the floor at this sample size).
3. Linear probes (``radford.eval.probe.linear_probe``, L2 logistic regression, C chosen on 50 labelled digits per
   class) on the discriminator's features (every layer max-pooled to 4x4, section 5.1), on a randomly initialised
   discriminator of the same shape, and on raw pixels, with 10 and 100 labelled digits per class; accuracy on the
   3,500 digits left over.

Every split comes from one seeded permutation of the digits. Data: ``$RADFORD_TEST_DATA`` (default ``../shared``).

    python benchmarks/dcgan_mnist.py                                  # the recipe's run: about 12 min on 2 CPU cores
    python benchmarks/dcgan_mnist.py --epochs 2 --work /tmp/dcgan     # a quick look
    python benchmarks/dcgan_mnist.py --grid docs/images/dcgan-mnist.png --walk docs/images/dcgan-mnist-walk.png
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from run_radford import run_radford

import radford
from radford import recipes
from radford.data.images import load_labelled
from radford.eval.frechet import accuracy, frechet_distance, train_classifier
from radford.eval.probe import linear_probe
from radford.models.dcgan import DCGAN

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RADFORD_TEST_DATA", REPO.parent / "shared"))
MNIST = SHARED / "datasets" / "mnist_5k.csv.gz"
RECIPE = "dcgan-mnist"
CLASSES = 10
VAL_PER_CLASS = 50  # labelled digits per class that choose the probe's C
CLASSIFIER_TRAIN = 4000  # digits the Frechet distance's classifier learns from; the rest measure its accuracy


def probe_splits(labels: np.ndarray, per_class: int, max_per_class: int) -> tuple[np.ndarray, ...]:
    """Indices of ``per_class`` training and VAL_PER_CLASS validation digits of each class, and a test split that
    is the same for every ``per_class`` up to ``max_per_class``: the digits no setting trains or validates on."""
    train, val, test = [], [], []
    for c in range(CLASSES):
        members = np.flatnonzero(labels == c)
        train.append(members[:per_class])
        val.append(members[max_per_class : max_per_class + VAL_PER_CLASS])
        test.append(members[max_per_class + VAL_PER_CLASS :])
    return tuple(np.concatenate(split) for split in (train, val, test))


@torch.no_grad()
def batched(function, images: torch.Tensor, batch_size: int = 500) -> np.ndarray:
    return torch.cat([function(batch) for batch in images.split(batch_size)]).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="folder for the run (default: a temporary one)")
    parser.add_argument("--mnist", type=Path, default=MNIST, help="the MNIST CSV (default: shared mnist_5k.csv.gz)")
    parser.add_argument("--epochs", type=int, help="training epochs (default: the recipe's)")
    parser.add_argument("--labels_per_class", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--grid", type=Path, help="also write the sample grid here (e.g. docs/images/dcgan-mnist.png)")
    parser.add_argument("--walk", type=Path, help="also write the latent walks here")
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    work = options.work or Path(tempfile.mkdtemp(prefix="dcgan-mnist-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"load average {os.getloadavg()[0]:.1f}, torch threads {torch.get_num_threads()}, work folder {work}")

    fit = ["fit", "--recipe", RECIPE, "--data.init_args.source", str(options.mnist.resolve())]
    fit += [] if options.epochs is None else ["--trainer.max_epochs", str(options.epochs)]
    fit_seconds = run_radford(fit, work).seconds
    run = max((work / "runs" / RECIPE).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    checkpoint = run / "checkpoints" / "last.ckpt"
    grid = options.grid.resolve() if options.grid else run / "grid.png"
    walk = options.walk.resolve() if options.walk else run / "walk.png"
    run_radford(["sample", "--checkpoint", str(checkpoint), "--out", str(grid), "--seed", str(options.seed)], work)
    run_radford(
        ["sample", "--checkpoint", str(checkpoint), "--out", str(walk), "--interpolate", "--seed", str(options.seed)],
        work,
    )

    trained = radford.load(checkpoint)
    hp = trained.hparams
    torch.manual_seed(options.seed)
    untrained = DCGAN(**hp).eval()  # the same architecture, freshly initialised: generator and discriminator
    images, labels = load_labelled(str(options.mnist), hp.image_size, hp.channels)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(options.seed))
    images, labels = images[order], labels[order]

    # Frechet distance on a digit classifier's features, 2,500 images a side.
    classifier = train_classifier(images[:CLASSIFIER_TRAIN], labels[:CLASSIFIER_TRAIN], seed=options.seed)
    classifier_accuracy = accuracy(classifier, images[CLASSIFIER_TRAIN:], labels[CLASSIFIER_TRAIN:])
    half = len(images) // 2
    reference, other_real = images[:half], images[half : 2 * half]
    generator = torch.Generator().manual_seed(options.seed)
    distances = {
        "real digits (floor)": frechet_distance(classifier, reference, other_real),
        "trained generator": frechet_distance(classifier, reference, trained.sample(half, generator)),
        "untrained generator": frechet_distance(classifier, reference, untrained.sample(half, generator)),
    }

    # Linear probes: the same test digits for every number of labels.
    features = {
        "trained discriminator": batched(trained.features, images),
        "random discriminator": batched(untrained.features, images),
        "raw pixels": images.flatten(1).numpy(),
    }
    y = labels.numpy()
    probes: dict[str, list[float]] = {name: [] for name in features}
    for per_class in options.labels_per_class:
        train, val, test = probe_splits(y, per_class, max(options.labels_per_class))
        for name, x in features.items():
            result = linear_probe((x[train], y[train]), (x[val], y[val]), (x[test], y[test]), seed=options.seed)
            probes[name].append(result.test_accuracy)

    epochs = options.epochs or recipes.load(recipes.find(RECIPE))["trainer"]["max_epochs"]
    batch_size = recipes.load(recipes.find(RECIPE))["data"]["init_args"]["batch_size"]
    print(
        f"\nDCGAN on MNIST-5k ({hp.image_size}x{hp.image_size}, width {hp.width}): {epochs} epochs of batch "
        f"{batch_size} ({epochs * (len(images) // batch_size)} steps) in {fit_seconds / 60:.1f} min; grid {grid}, "
        f"walks {walk}"
    )
    print(
        f"\nFrechet distance on a digit classifier's features ({half} images a side; classifier accuracy "
        f"{classifier_accuracy:.3f} on {len(images) - CLASSIFIER_TRAIN} held-out digits)"
    )
    print("| images compared with real digits | Frechet distance |\n| --- | ---: |")
    for name, distance in distances.items():
        print(f"| {name} | {distance:.1f} |")
    test_size = len(probe_splits(y, 0, max(options.labels_per_class))[2])
    print(
        f"\nLinear probe accuracy on {test_size} held-out digits (C chosen on {VAL_PER_CLASS} more labelled "
        "digits per class)"
    )
    print("| features | dims | " + " | ".join(f"{k} labels/class" for k in options.labels_per_class) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in options.labels_per_class) + " |")
    for name, accuracies in probes.items():
        print(f"| {name} | {features[name].shape[1]} | " + " | ".join(f"{a:.3f}" for a in accuracies) + " |")


if __name__ == "__main__":
    main()
