"""Pillow-only image handling: shapes, ranges, crops, and a clear error for what does not decode."""

import io

import pytest
import torch
from PIL import Image

from radford.data.pixels import normalize, open_image, resize_center_crop, to_tensor
from radford.errors import RadfordError


def png_bytes(width: int, height: int, mode: str = "RGB") -> bytes:
    image = Image.new(mode, (width, height))
    # A white square in the centre, so the crop keeps it and drops the black borders.
    x, y = width // 2, height // 2
    image.paste(255 if mode == "L" else (255, 255, 255), (x - 5, y - 5, x + 5, y + 5))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("mode,channels", [("RGB", 3), ("L", 1)])
def test_decode_resize_crop_scale(mode, channels):
    image = resize_center_crop(open_image(png_bytes(80, 40), mode), 20)
    pixels = to_tensor(image)
    assert pixels.shape == (channels, 20, 20)
    assert pixels.min() == 0 and pixels.max() == 1
    assert pixels[:, 10, 10].eq(1).all() and pixels[:, 0, 0].eq(0).all()


def test_normalize_per_channel():
    pixels = torch.ones(2, 3, 4, 4)
    out = normalize(pixels, (0.5, 0.25, 0.0), (0.5, 0.25, 1.0))
    assert torch.equal(out[0, :, 0, 0], torch.tensor([1.0, 3.0, 1.0]))


def test_undecodable_and_missing_images_are_one_line_errors(tmp_path):
    with pytest.raises(RadfordError, match="cannot decode image broken.png"):
        open_image(b"not an image", name="broken.png")
    with pytest.raises(RadfordError, match="not found"):
        open_image(tmp_path / "absent.jpg")
