"""The embedded shapes dataset: deterministic, held-out combinations only in their split, captions that name what is
drawn, and the folder layout zero-shot evaluation reads."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from radford.data.shapes import COLOURS, HELD_OUT, SHAPES, Shapes, class_names, combinations, write_folder
from radford.errors import RadfordError


def test_deterministic_from_seed():
    a, b, c = Shapes("train", 10, seed=3), Shapes("train", 10, seed=3), Shapes("train", 10, seed=4)
    assert [a.sample(i) for i in range(10)] == [b.sample(i) for i in range(10)]
    assert np.array_equal(np.asarray(a.image(5)), np.asarray(b.image(5)))
    assert [a.sample(i) for i in range(10)] != [c.sample(i) for i in range(10)]


def test_held_out_combinations_stay_out_of_training():
    train, held_out = Shapes("train", 3000), Shapes("heldout", 300)
    seen = {(s.colour, s.shape) for s in map(train.sample, range(len(train)))}
    assert seen == set(combinations("train")) and not seen & HELD_OUT
    assert {(s.colour, s.shape) for s in map(held_out.sample, range(len(held_out)))} == HELD_OUT
    # Each part of a held-out combination is seen in training with other partners.
    assert {c for c, _ in seen} == set(COLOURS) and {s for _, s in seen} == set(SHAPES)
    assert len(class_names()) == len(COLOURS) * len(SHAPES) and len(class_names("heldout")) == len(HELD_OUT)


def test_captions_name_what_is_drawn():
    shapes = Shapes("val", 200, image_size=32)
    for i in range(len(shapes)):
        sample = shapes.sample(i)
        words = sample.caption.lower()
        assert sample.colour in words and sample.shape in words
    assert len({shapes.sample(i).caption.split()[0] for i in range(200)}) > 5  # varied templates
    # The shape's colour dominates the pixels that differ from the pale background.
    image = np.asarray(shapes.image(0), dtype=float)
    assert image.shape == (32, 32, 3)
    ink = image[image.min(-1) < 180]
    expected = np.array(COLOURS[shapes.sample(0).colour])
    assert np.abs(ink.mean(0) - expected).max() < 60


def test_write_folder(tmp_path):
    path = write_folder(tmp_path, Shapes("heldout", 12, image_size=24))
    with open(path, encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 12 and all((tmp_path / row["filepath"]).is_file() for row in rows)
    assert {p.name for p in tmp_path.iterdir() if p.is_dir()} <= set(class_names("heldout"))


def test_bad_arguments():
    with pytest.raises(RadfordError, match="split 'test' does not exist; choose from: train, val, heldout"):
        Shapes("test")
    with pytest.raises(RadfordError, match="image_size >= 16"):
        Shapes("train", 10, image_size=8)
