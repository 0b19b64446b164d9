"""``radford sample``: grids and latent walks of the sizes asked for from a checkpoint ``radford fit`` wrote, the same
picture for the same seed, and mistakes as one line before any work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from radford.checkpoints import Weights, write_checkpoint
from radford.cli import main
from radford.models.dcgan import GRID_PADDING
from radford.models.gpt import GPT
from tests.helpers import error_line

SIZE = 32  # the dcgan-digits recipe's images


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A DCGAN trained for two steps on the embedded digits, through the CLI (in this process: faster)."""
    folder = tmp_path_factory.mktemp("dcgan")
    before = os.getcwd()
    os.chdir(folder)  # radford fit writes runs/ in the working directory
    try:
        main(
            [
                "fit",
                "--recipe",
                "dcgan-digits",
                "--trainer.max_epochs",
                "1",
                "--trainer.limit_train_batches",
                "2",
                "--trainer.enable_progress_bar",
                "false",
                "--model.init_args.width",
                "8",
                "--model.init_args.grid_size",
                "0",
            ]
        )
    finally:
        os.chdir(before)
    return folder / "runs" / "dcgan-digits" / "version_0" / "checkpoints" / "last.ckpt"


def grid_size(columns: int, rows: int) -> tuple[int, int]:
    return GRID_PADDING + columns * (SIZE + GRID_PADDING), GRID_PADDING + rows * (SIZE + GRID_PADDING)


def sample(capsys, *args: str) -> str:
    main(["sample", *args])
    return capsys.readouterr().out


def test_grid_of_samples(checkpoint, tmp_path, capsys):
    out = sample(capsys, "--checkpoint", str(checkpoint), "--out", str(tmp_path / "grid.png"))
    assert out == f"wrote {tmp_path / 'grid.png'}: 64 images of 32x32\n"
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.format == "PNG" and grid.mode == "L" and grid.size == grid_size(8, 8)
    sample(capsys, "--checkpoint", str(checkpoint), "--out", str(tmp_path / "ten.jpg"), "--num_samples", "10")
    with Image.open(tmp_path / "ten.jpg") as grid:
        assert grid.format == "JPEG" and grid.size == grid_size(4, 3)  # the last row is short


def test_interpolation_rows(checkpoint, tmp_path, capsys):
    out = sample(
        capsys,
        "--checkpoint",
        str(checkpoint),
        "--out",
        str(tmp_path / "walk.png"),
        "--interpolate",
        "--num_samples",
        "3",
        "--steps",
        "5",
    )
    assert "15 images" in out
    with Image.open(tmp_path / "walk.png") as walk:
        assert walk.size == grid_size(5, 3)
    sample(capsys, "--checkpoint", str(checkpoint), "--out", str(tmp_path / "walks.png"), "--interpolate")
    with Image.open(tmp_path / "walks.png") as walk:
        assert walk.size == grid_size(10, 8)  # 8 walks of 10 steps by default


def test_seed_repeats_the_picture(checkpoint, tmp_path, capsys):
    def picture(name: str, seed: str) -> bytes:
        sample(capsys, "--checkpoint", str(checkpoint), "--out", str(tmp_path / name), "--seed", seed)
        return (tmp_path / name).read_bytes()

    first = picture("a.png", "1")
    assert picture("b.png", "1") == first
    assert picture("c.png", "2") != first


def gpt_checkpoint(path: Path) -> Path:
    """A radford checkpoint of a tiny GPT, as radford fit records one."""
    arch = {"vocab_size": 16, "block_size": 8, "n_layer": 1, "n_head": 1, "n_embd": 8}
    write_checkpoint(Weights(GPT, arch, GPT(**arch).state_dict(), None), path)
    return path


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--checkpoint", "/no/such.ckpt", "--out", "{tmp}/x.png"], ["/no/such.ckpt not found"]),
        (["--checkpoint", "{ckpt}"], ["radford sample", "--out"]),
        (["--checkpoint", "{ckpt}", "--out", "{tmp}/x.png", "--num_samples", "0"], ["--num_samples", "got 0"]),
        (["--checkpoint", "{ckpt}", "--out", "{tmp}/x.xyz"], ["unknown suffix '.xyz'", ".png"]),
        (["--checkpoint", "{ckpt}", "--out", "{tmp}/x.png", "--interpolate", "--steps", "1"], ["steps", "got 1"]),
        (["--checkpoint", "{gpt}", "--out", "{tmp}/x.png"], ["holds a GPT", "DCGAN"]),
    ],
    ids=["missing-checkpoint", "no-out", "num-samples", "suffix", "steps", "not-a-dcgan"],
)
def test_mistakes_are_one_line(checkpoint, tmp_path, capsys, args, expected):
    names = {"ckpt": checkpoint, "tmp": tmp_path, "gpt": gpt_checkpoint(tmp_path / "gpt.ckpt")}
    line = error_line(capsys, "sample", *(arg.format(**names) for arg in args))
    for fragment in expected:
        assert fragment in line, line
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x.xyz").exists()
