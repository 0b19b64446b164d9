"""iGPT on MNIST: linear-probe accuracy of its features, layer by layer, against probes on raw pixels; test loss;
and a PNG of completions. Prints a markdown table; the PNG goes in the checkpoint's run folder (``--image``: elsewhere).

    radford fit --recipe igpt-mnist          # radford's dataset mnist (MNIST-5k, downloaded once)
    python plugins/radford-igpt/benchmarks/mnist.py --checkpoint runs/igpt-mnist/version_0/checkpoints/last.ckpt

Every probe is radford's ``linear_probe``: logistic regression on standardised features, C chosen on the
validation split, accuracy on the test split. The model never trained on either split.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from radford.api import linear_probe
from threadpoolctl import threadpool_limits

from radford_igpt.complete import beside_run, completion_grid, data_for, load_model
from radford_igpt.data import PixelData
from radford_igpt.model import with_start

SPLITS = ("train", "val", "test")
BATCH = 250
IMAGE = "igpt-mnist-completions.png"  # written in the checkpoint's run folder unless --image says where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--source", default="mnist", help="the digits: radford's dataset name or a CSV file")
    parser.add_argument(
        "--image",
        help=f"the completions PNG (default: {IMAGE} in the checkpoint's run folder; the README's is "
        f"docs/images/{IMAGE})",
    )
    parser.add_argument("--images", type=int, default=10, help="test images to complete")
    parser.add_argument("--samples", type=int, default=5, help="completions of each")
    options = parser.parse_args()

    model = load_model(options.checkpoint)
    data = data_for(model, options.source)
    ids = {split: data.split(split) for split in SPLITS}
    side = math.isqrt(model.hparams.block_size)
    print(
        f"{options.checkpoint}: {model.hparams.n_layer} layers, {model.hparams.n_embd} wide, "
        f"{model.hparams.vocab_size} colours, {side}x{side} images; "
        f"{', '.join(f'{len(ids[s][0])} {s}' for s in SPLITS)}"
    )

    with torch.inference_mode():
        test_ids = ids["test"][0]
        loss = np.mean([model.loss((with_start(batch), batch)).item() for batch in test_ids.split(BATCH)])
    print(f"test loss: {loss:.4f} nats per pixel ({loss / math.log(2):.4f} bits)\n")

    rows = []
    raw = PixelData(
        options.source,
        image_size=None,
        val_fraction=data.val_fraction,
        test_fraction=data.test_fraction,
        seed=data.seed,
    )
    side_raw = raw.pixels("train")[0].shape[1]
    rows.append(
        (
            f"raw pixels, {side_raw}x{side_raw} grey",
            {s: (raw.pixels(s)[0].reshape(-1, side_raw * side_raw), raw.pixels(s)[1]) for s in SPLITS},
        )
    )
    rows.append(
        (
            f"model input: {side}x{side} palette colours",
            {s: (data.palette().decode(ids[s][0].numpy())[..., 0], ids[s][1].numpy()) for s in SPLITS},
        )
    )
    for layer in range(model.hparams.n_layer + 1):
        model.feature_layer = layer
        features = {s: (model.features(ids[s][0], batch_size=BATCH).numpy(), ids[s][1].numpy()) for s in SPLITS}
        where = "final LayerNorm" if layer == model.hparams.n_layer else f"block {layer} input"
        rows.append((f"iGPT features, {where}", features))

    print("| features | dims | C | val accuracy | test accuracy |")
    print("| --- | --- | --- | --- | --- |")
    for name, splits in rows:
        # One BLAS thread: on problems this small, more threads wait on each other (7x slower on 2 busy cores).
        with threadpool_limits(1):
            result = linear_probe(splits["train"], splits["val"], splits["test"])
        print(
            f"| {name} | {splits['train'][0].shape[1]} | {result.C:g} | {result.val_accuracy:.3f} | "
            f"{result.test_accuracy:.3f} |",
            flush=True,
        )

    grid = completion_grid(model, ids["test"][0][: options.images], options.samples)
    image = options.image or beside_run(options.checkpoint, IMAGE)
    grid.save(image)
    print(f"\nwrote {image}: top half given (grey: hidden), {options.samples} completions, the original")


if __name__ == "__main__":
    main()
