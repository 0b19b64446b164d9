"""CLIP as a user runs it: ``radford fit --recipe clip-tiny`` for a few steps, ``radford.load`` of its checkpoint,
``radford zeroshot`` on a folder of labelled images, and the mistakes zeroshot reports in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

import radford
from radford.cli import main
from radford.data.shapes import Shapes, class_names, write_folder
from radford.models.clip import CLIP
from radford.tokenizers.clip import CLIPTokenizer
from tests.helpers import error_line, radford_cli


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("clip-run")
    result = radford_cli(
        "fit",
        "--recipe",
        "clip-tiny",
        "--trainer.max_steps",
        "3",
        "--trainer.val_check_interval",
        "3",
        "--data.shapes_train",
        "96",
        "--data.shapes_val",
        "32",
        "--data.batch_size",
        "16",
        "--data.num_workers",
        "0",
        cwd=work,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return work / "runs" / "clip-tiny" / "version_0" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("heldout")
    write_folder(folder, Shapes("heldout", 8, image_size=48))
    return folder


@pytest.mark.slow
def test_fit_load_and_zeroshot(checkpoint, images, capsys):
    model = radford.load(checkpoint)
    assert isinstance(model, CLIP) and model.hparams.size == "ViT-tiny"
    tokenizer = model.tokenizer  # the vocabulary learned from the captions
    assert isinstance(tokenizer, CLIPTokenizer)
    assert tokenizer.vocab_size == model.hparams.vocab_size

    main(
        [
            "zeroshot",
            "--checkpoint",
            str(checkpoint),
            "--images",
            str(images),
            "--classes",
            *class_names(),
            "--templates",
            "a photo of a {}.",
            "a {}.",
        ]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    predictions = [line.split("\t") for line in lines[:-1]]
    assert len(predictions) == 8 and all(name in class_names() for _, name, _ in predictions)
    assert all(0.0 < float(p) <= 1.0 for _, _, p in predictions)
    assert lines[-1].startswith("accuracy ") and lines[-1].endswith("chance 0.0333 (30 classes)")


@pytest.mark.slow
def test_zeroshot_mistakes(checkpoint, images, tmp_path, capsys):
    assert "no images in" in error_line(
        capsys, "zeroshot", "--checkpoint", str(checkpoint), "--images", str(tmp_path), "--classes", "a", "b"
    )
    assert "at least two classes" in error_line(
        capsys, "zeroshot", "--checkpoint", str(checkpoint), "--images", str(images), "--classes", "red circle"
    )
    assert "needs one {} for the class name" in error_line(
        capsys,
        "zeroshot",
        "--checkpoint",
        str(checkpoint),
        "--images",
        str(images),
        "--classes",
        "a",
        "b",
        "--templates",
        "a photo",
    )
    assert "not found" in error_line(
        capsys, "zeroshot", "--checkpoint", str(tmp_path / "none.ckpt"), "--images", str(images), "--classes", "a", "b"
    )
    (tmp_path / "broken.png").write_bytes(b"not a png")
    assert "cannot decode image" in error_line(
        capsys,
        "zeroshot",
        "--checkpoint",
        str(checkpoint),
        "--images",
        str(tmp_path / "broken.png"),
        "--classes",
        "a",
        "b",
    )
