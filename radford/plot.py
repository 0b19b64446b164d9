"""Line charts drawn with Pillow alone (radford depends on no plotting library): the ``loss.png`` of every fit."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from radford.io import write_atomically

SIZE = (800, 480)
LEFT, TOP, RIGHT, BOTTOM = 80, 40, 30, 50  # margins around the plotting area, in pixels
# matplotlib's first colours: blue for the first curve (training), orange for the second (validation), ...
COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75))
GRID, AXIS, TEXT = (230, 230, 230), (90, 90, 90), (30, 30, 30)
Points = Sequence[tuple[float, float]]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # a scalable font where Pillow has FreeType
    except (TypeError, ImportError):
        return ImageFont.load_default()


def ticks(low: float, high: float, count: int = 5, integer: bool = False) -> list[float]:
    """About ``count`` round values (1, 2 or 5 times a power of ten apart, whole numbers if ``integer``) covering
    ``low`` to ``high``."""
    if high <= low:
        low, high = low - 1, high + 1
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    step = max(step, 1) if integer else step
    first = math.floor(low / step) * step
    return [first + i * step for i in range(int(math.ceil((high - first) / step)) + 1)]


def _label(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def line_chart(series: Mapping[str, Points], path: Path, title: str, x_label: str) -> Path:
    """Draw each named series of (x, y) points as a line (a single point as a dot) and write a PNG to ``path``; x
    counts from 0 in whole numbers (steps, epochs)."""
    series = {name: [(x, y) for x, y in points if math.isfinite(y)] for name, points in series.items()}
    series = {name: points for name, points in series.items() if points}
    xs = [x for points in series.values() for x, _ in points] or [0.0]
    ys = [y for points in series.values() for _, y in points] or [0.0]
    x_ticks, y_ticks = ticks(min(0.0, *xs), max(xs), integer=True), ticks(min(ys), max(ys))  # x: steps from 0
    (x0, x1), (y0, y1) = (x_ticks[0], x_ticks[-1]), (y_ticks[0], y_ticks[-1])
    width, height = SIZE
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM

    def at(x: float, y: float) -> tuple[float, float]:
        return LEFT + (x - x0) / (x1 - x0) * plot_w, TOP + (1 - (y - y0) / (y1 - y0)) * plot_h

    image = Image.new("RGB", SIZE, "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(16), _font(12)
    for y in y_ticks:
        _, py = at(x0, y)
        draw.line([(LEFT, py), (width - RIGHT, py)], fill=GRID)
        draw.text((LEFT - 6, py), _label(y), fill=TEXT, font=small, anchor="rm")
    for x in x_ticks:
        px, _ = at(x, y0)
        draw.line([(px, TOP), (px, height - BOTTOM)], fill=GRID)
        draw.text((px, height - BOTTOM + 6), _label(x), fill=TEXT, font=small, anchor="mt")
    draw.rectangle([LEFT, TOP, width - RIGHT, height - BOTTOM], outline=AXIS)
    draw.text((width / 2, TOP / 2), title, fill=TEXT, font=font, anchor="mm")
    draw.text((LEFT + plot_w / 2, height - 12), x_label, fill=TEXT, font=small, anchor="mm")
    for index, (name, points) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        pixels = [at(x, y) for x, y in sorted(points)]
        if len(pixels) > 1:
            draw.line(pixels, fill=colour, width=2)
        for px, py in pixels if len(pixels) <= 50 else ():  # sparse curves (validation) show their points
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        legend_y = TOP + 10 + 18 * index
        draw.line([(width - RIGHT - 150, legend_y), (width - RIGHT - 125, legend_y)], fill=colour, width=3)
        draw.text((width - RIGHT - 118, legend_y), name, fill=TEXT, font=small, anchor="lm")
    write_atomically(path, lambda tmp: image.save(tmp, format="PNG"))
    return path
