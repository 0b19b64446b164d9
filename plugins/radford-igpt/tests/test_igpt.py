"""radford-igpt: the palette, the pixel data, the model's features and completions, learning on real digits,
and the plugin working through the radford command once installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image
from radford.api import RadfordError, find_recipe, load, lookup

from radford_igpt.complete import beside_run
from radford_igpt.data import PixelData
from radford_igpt.model import IGPT, START, with_start
from radford_igpt.palette import Palette

TINY = dict(vocab_size=8, block_size=64, n_layer=2, n_head=2, n_embd=32)


def test_palette_finds_the_clusters_sorted_dark_to_bright():
    rng = np.random.default_rng(0)
    pixels = np.concatenate([rng.normal(centre, 0.01, (500, 1)) for centre in (0.9, 0.1, 0.5)])
    palette = Palette(colors=3)
    palette.train(pixels)
    np.testing.assert_allclose(palette.centers[:, 0], [0.1, 0.5, 0.9], atol=0.01)
    np.testing.assert_array_equal(palette.encode(np.array([[0.0], [0.52], [1.0]])), [0, 1, 2])
    np.testing.assert_allclose(palette.decode(palette.encode(pixels)), pixels, atol=0.05)


def test_palette_refuses_bad_sizes_and_use_before_training():
    with pytest.raises(RadfordError, match="at least 2 colors"):
        Palette(colors=1)
    with pytest.raises(RadfordError, match="2 distinct pixel values.*colors <= 2"):
        Palette(colors=4).train(np.array([[0.0], [1.0]] * 10))
    with pytest.raises(RadfordError, match="not trained"):
        Palette().encode(np.zeros((1, 1)))


def test_digits_are_sequences_of_palette_ids_in_disjoint_splits():
    data = PixelData(batch_size=16)
    sizes = {split: len(data.split(split)[0]) for split in ("train", "val", "test")}
    assert sizes == {"train": 1437, "val": 180, "test": 180}  # scikit-learn's 1,797 digits
    assert data.vocab_size == 8 and data.sequence_length == 64
    ids, labels = data.split("train")
    assert ids.shape == (1437, 64) and ids.min() >= 0 and ids.max() < 8 and set(labels.tolist()) == set(range(10))
    # Splits are disjoint: no held-out image is also a training image.
    train = {tuple(row) for row in data.pixels("train")[0].reshape(1437, -1).tolist()}
    assert not any(tuple(row) in train for row in data.pixels("test")[0].reshape(180, -1).tolist())
    x, y = next(iter(data.train_dataloader()))
    assert (x[:, 0] == START).all() and torch.equal(x[:, 1:], y[:, :-1])  # each position predicts the next pixel


def test_csv_images_are_read_resized_and_checked(tmp_path):
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.integers(0, 256, (40, 16)), np.arange(40)[:, None] % 2], axis=1)
    path = tmp_path / "images.csv"
    np.savetxt(path, rows, fmt="%d", delimiter=",")
    data = PixelData(str(path), tokenizer=Palette(colors=4))
    assert data.pixels("train")[0].shape == (32, 4, 4, 1) and data.sequence_length == 16
    assert PixelData(str(path), image_size=2).pixels("val")[0].shape == (4, 2, 2, 1)
    with pytest.raises(RadfordError, match="'missing.csv' not found"):
        PixelData("missing.csv").pixels("train")
    np.savetxt(path, rows[:, 1:], fmt="%d", delimiter=",")
    with pytest.raises(RadfordError, match="rows of 16 values"):
        PixelData(str(path)).pixels("train")
    with pytest.raises(RadfordError, match="unknown split 'dev'"):
        data.pixels("dev")


def test_features_are_the_layer_normalised_block_inputs_average_pooled():
    torch.manual_seed(0)
    model = IGPT(**TINY).eval()
    ids = torch.randint(0, 8, (3, 64))
    x = with_start(ids)
    with torch.no_grad():
        embedded = model.transformer.wte(x) + model.transformer.wpe(torch.arange(64))
        first = model.transformer.h[0].ln_1(embedded).mean(1)
        last = model.hidden_states(x).mean(1)  # after ln_f
    assert model.features(ids).shape == (3, 32)  # the middle block by default
    assert model.feature_input == "images" and model.training is False
    # The protocol's description names iGPT's own readout, not GPT's last-token state, and follows feature_layer.
    assert model.feature_description == "layer-normalised input of block 1, average-pooled over the pixels"
    model.feature_layer = 0
    torch.testing.assert_close(model.features(ids), first)
    assert model.feature_description == "layer-normalised input of block 0, average-pooled over the pixels"
    model.feature_layer = 2
    torch.testing.assert_close(model.features(ids, batch_size=2), last)
    assert model.feature_description == "final LayerNorm output, average-pooled over the pixels"
    model.feature_layer = 3
    with pytest.raises(RadfordError, match=r"feature_layer must be in 0..2"):
        model.features(ids)
    with pytest.raises(RadfordError, match="features are of images"):
        model.features(["a text, as GPT's features take"])


def test_completion_keeps_the_given_pixels_and_samples_the_rest():
    torch.manual_seed(0)
    model = IGPT(**TINY).eval()
    ids = torch.randint(0, 8, (2, 64))
    sample = model.complete(ids, given=32, generator=torch.Generator().manual_seed(1))
    assert sample.shape == ids.shape and torch.equal(sample[:, :32], ids[:, :32])
    assert sample.min() >= 0 and sample.max() < 8
    assert torch.equal(sample, model.complete(ids, given=32, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(RadfordError, match="given must be in 0..63"):
        model.complete(ids, given=64)


def test_what_is_made_of_a_checkpoint_goes_in_its_run_folder(tmp_path, monkeypatch):
    """The benchmark's picture lands beside the run, as radford's own commands put theirs, not in the working
    directory (a checkout, usually)."""
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "igpt-mnist" / "version_3"
    (run / "checkpoints").mkdir(parents=True)
    (tmp_path / "runs" / "igpt-mnist" / "latest").symlink_to("version_3")
    for checkpoint in ("runs/igpt-mnist/version_3/checkpoints/last.ckpt", "runs/igpt-mnist/latest/checkpoints/x.ckpt"):
        assert beside_run(checkpoint, "grid.png") == run / "grid.png"
    assert beside_run("weights/igpt.ckpt", "grid.png") == tmp_path / "weights" / "grid.png"  # in no run: beside it


def _trainer(max_steps: int) -> L.Trainer:
    return L.Trainer(
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


@pytest.mark.slow
def test_learns_the_digits():
    """The oracle: next-pixel loss on held-out digits falls well below the entropy of the palette's colour
    frequencies (1.58 nats per pixel: the best a model that ignores the other pixels can do)."""
    L.seed_everything(0)
    data = PixelData(batch_size=32)
    model = IGPT(**TINY, warmup_steps=20)
    trainer = _trainer(200)
    trainer.fit(model, data)
    loss = trainer.validate(model, data, verbose=False)[0]["val_loss"]
    assert loss < 1.3, loss  # 1.13 measured
    # The checkpointable palette is the data's.
    np.testing.assert_array_equal(model.palette.numpy(), data.tokenizer.centers)


def test_mnist_csv(shared_data):
    data = PixelData(str(shared_data / "datasets" / "mnist_5k.csv.gz"), image_size=14)
    pixels, labels = data.pixels("train")
    assert pixels.shape == (4000, 14, 14, 1) and data.sequence_length == 196
    counts = np.bincount(np.concatenate([data.pixels(s)[1] for s in ("train", "val", "test")]))
    assert counts.tolist() == [500] * 10  # mnist_5k: 500 of each digit


def test_entry_points_name_the_plugin():
    assert lookup("models", "igpt").load() is IGPT and lookup("models", "igpt").distribution == "radford-igpt"
    assert lookup("data", "igpt-pixels").load() is PixelData
    assert lookup("tokenizers", "igpt-palette").load() is Palette
    assert find_recipe("igpt-digits").parent.name == "recipes"


@pytest.mark.slow
def test_radford_command_trains_loads_and_completes(tmp_path):
    radford = shutil.which("radford")
    assert radford, "the radford command is not on PATH: pip install radford first"

    def run(*args: str) -> str:
        result = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    listing = run(radford, "plugins", "--check")
    assert any(
        line.split()[:2] == ["igpt", "radford-igpt"] and line.rstrip().endswith("ok") for line in listing.splitlines()
    )
    assert "igpt-digits" in run(radford, "recipes")
    run(radford, "fit", "--recipe", "igpt-digits", "--trainer.max_steps", "10")
    checkpoint = tmp_path / "runs" / "igpt-digits" / "version_0" / "checkpoints" / "last.ckpt"
    model = load(checkpoint)
    assert isinstance(model, IGPT) and model.palette.sum() > 0  # the palette travelled with the weights
    run(
        sys.executable,
        "-m",
        "radford_igpt.complete",
        "--checkpoint",
        str(checkpoint),
        "--images",
        "2",
        "--samples",
        "1",
        "--out",
        "completions.png",
    )
    assert Image.open(tmp_path / "completions.png").size == (3 * 34 + 2, 2 * 34 + 2)  # 3 columns of 8x8 at 4x
    # The MNIST benchmark on the same checkpoint and the embedded digits: its picture goes in the run folder.
    benchmark = Path(__file__).resolve().parents[1] / "benchmarks" / "mnist.py"
    args = ("--checkpoint", "runs/igpt-digits/latest/checkpoints/last.ckpt", "--source", "digits", "--images", "2")
    assert "| iGPT features, block 1 input |" in run(sys.executable, str(benchmark), *args, "--samples", "1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["completions.png", "runs"]  # nothing else here
    assert (checkpoint.parents[1] / "igpt-mnist-completions.png").is_file()
