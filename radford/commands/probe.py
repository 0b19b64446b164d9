"""``radford probe``: the sentiment neuron's analysis (Radford et al. 2017, section 4) for any model with features.

A model is probed through the text side of the features protocol (``radford.eval.probe.TextFeatures``): the mLSTM
returns its final cell state after each text (as OpenAI's encoder's ``transform``), GPT its final hidden state at each
text's last token; any registered model that declares ``feature_input = "texts"`` is probed the same way.

The labelled texts are split once, by ``seed``: ``test_fraction`` for test, then ``val_fraction`` of the rest for
validation (``split_indices``). An L1-regularised logistic regression is fitted on the training features with C
chosen on validation (``radford.eval.probe.linear_probe``); the report gives its test accuracy, how many features
have a non-zero weight, the feature with the largest weight (the "sentiment unit"), and that single feature's test
accuracy as a classifier thresholded where it best splits the training texts. It writes ``probe.json`` and
``histogram.png`` (the top feature's values per class on the test texts: the paper's figure 3) to ``--output_dir``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from radford.cli import ArgumentParser
from radford.errors import RadfordError

FEATURE_CHUNK = 512  # texts per call of features(): the progress line moves on this often
CLASS_COLOURS = ((66, 133, 244, 140), (234, 67, 53, 140))  # translucent, so overlapping bars show both


def read_labelled(path: str, text_field: str, label_field: str) -> tuple[list[str], np.ndarray, list[str]]:
    """Texts, 0/1 labels and the two class names (sorted) of a CSV or JSONL file."""
    from radford.data.records import field, read_records

    texts, labels = [], []
    for where, record in read_records(path):
        text = field(where, record, text_field)
        if not isinstance(text, str):
            raise RadfordError(f"{where}: field {text_field!r} is {type(text).__name__}, not text")
        texts.append(text)
        labels.append(str(field(where, record, label_field)))
    classes = sorted(set(labels))
    if len(classes) != 2:
        raise RadfordError(f"{path}: field {label_field!r} must hold exactly two classes for a sentiment probe, "
                           f"found {len(classes)}: {', '.join(map(repr, classes[:10]))}")
    return texts, np.array([classes.index(label) for label in labels]), classes


def extract(model, texts: Sequence[str]) -> np.ndarray:
    """``model.features`` of every text, in chunks, with a progress line on stderr."""
    start, rows = time.perf_counter(), []
    for first in range(0, len(texts), FEATURE_CHUNK):
        rows.append(model.features(texts[first : first + FEATURE_CHUNK]).float().cpu().numpy())
        done = min(first + FEATURE_CHUNK, len(texts))
        print(f"\rfeatures: {done}/{len(texts)} texts, {time.perf_counter() - start:.0f} s", end="", file=sys.stderr,
              flush=True)
    print(file=sys.stderr)
    features = np.concatenate(rows)
    if features.shape[0] != len(texts) or features.ndim != 2:
        raise RadfordError(f"{type(model).__name__}.features returned shape {features.shape} for {len(texts)} "
                           "texts; the protocol is (texts, features)")
    return features


def histogram_png(values: dict[str, np.ndarray], path: Path, title: str, bins: int = 40) -> None:
    """A histogram per class of one feature's values, overlaid, as a PNG (Pillow; no plotting library)."""
    from PIL import Image, ImageDraw, ImageFont

    width, height, left, right, top, bottom = 720, 440, 60, 20, 50, 50
    everything = np.concatenate(list(values.values()))
    edges = np.linspace(everything.min(), everything.max() + 1e-9, bins + 1)
    counts = {name: np.histogram(v, edges)[0] for name, v in values.items()}
    peak = max(int(c.max()) for c in counts.values()) or 1
    image = Image.new("RGBA", (width, height), "white")
    font = ImageFont.load_default(size=14)
    plot_w, plot_h = width - left - right, height - top - bottom
    bar_w = plot_w / bins
    for count, colour in zip(counts.values(), CLASS_COLOURS, strict=True):
        layer = Image.new("RGBA", image.size, (0, 0, 0, 0))  # one per class, so that overlaps blend
        bars = ImageDraw.Draw(layer)
        for b, n in enumerate(count):
            x0 = left + b * bar_w
            bars.rectangle([x0, top + plot_h * (1 - n / peak), x0 + bar_w - 1, top + plot_h], fill=colour)
        image = Image.alpha_composite(image, layer)
    draw = ImageDraw.Draw(image)
    draw.line([(left, top), (left, top + plot_h), (left + plot_w, top + plot_h)], fill="black")
    for k in range(5):  # axis ticks: values along x, counts up y
        x = left + k * plot_w / 4
        draw.text((x, top + plot_h + 6), f"{edges[0] + k * (edges[-1] - edges[0]) / 4:.2f}", fill="black",
                  font=font, anchor="ma")
        y = top + plot_h - k * plot_h / 4
        draw.text((left - 6, y), str(round(k * peak / 4)), fill="black", font=font, anchor="rm")
    draw.text((width / 2, 12), title, fill="black", font=font, anchor="ma")
    draw.text((left + plot_w / 2, height - 18), "unit value (cell state)", fill="black", font=font, anchor="ma")
    for row, (name, colour) in enumerate(zip(values, CLASS_COLOURS, strict=True)):
        y = top + 8 + row * 20
        draw.rectangle([left + plot_w - 130, y, left + plot_w - 116, y + 14], fill=colour[:3])
        draw.text((left + plot_w - 110, y), f"{name} ({len(values[name])})", fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert("RGB").save(path)


def main(args: Sequence[str]) -> None:
    """Fit an L1 linear probe on a model's features of labelled texts; find and plot the top unit."""
    parser = ArgumentParser(prog="radford probe", description=main.__doc__)
    parser.add_argument("--checkpoint", required=True, help="a radford .ckpt (or Hugging Face GPT folder)")
    parser.add_argument("--data", required=True, help="labelled texts: a .csv or .jsonl file (optionally .bz2/.gz)")
    parser.add_argument("--text_field", default="text")
    parser.add_argument("--label_field", default="label", help="two classes, e.g. positive/negative")
    parser.add_argument("--test_fraction", type=float, default=0.2)
    parser.add_argument("--val_fraction", type=float, default=0.1, help="of what test leaves, to choose C on")
    parser.add_argument("--seed", type=int, default=0, help="draws the split")
    parser.add_argument("--output_dir", default="probe", help="where probe.json and histogram.png are written")
    options = parser.parse_args(args)
    for name in ("test_fraction", "val_fraction"):
        if not 0.0 < getattr(options, name) < 1.0:
            raise RadfordError(f"--{name} must be between 0 and 1 (exclusive), got {getattr(options, name)}")

    from radford.checkpoints import load
    from radford.eval.probe import Threshold, linear_probe, split_indices

    texts, y, classes = read_labelled(options.data, options.text_field, options.label_field)
    train, val, test = split_indices(len(texts), options.test_fraction, options.val_fraction, options.seed)
    if min(len(train), len(val), len(test)) == 0 or len(np.unique(y[train])) < 2:
        raise RadfordError(f"{options.data}: {len(texts)} texts are too few to split into train ({len(train)}), "
                           f"validation ({len(val)}) and test ({len(test)}) with both classes in train")
    model = load(options.checkpoint)
    if getattr(model, "feature_input", None) != "texts":
        raise RadfordError(f"{options.checkpoint} holds a {type(model).__name__}, which has no features of texts to "
                           "probe (models that have: feature_input = 'texts', as GPT and the mLSTM)")
    x = extract(model, texts)
    probe = linear_probe((x[train], y[train]), (x[val], y[val]), (x[test], y[test]), penalty="l1")
    results = {
        "checkpoint": options.checkpoint, "data": options.data, "classes": classes, "seed": options.seed,
        "train": len(train), "val": len(val), "test": len(test), "features": x.shape[1],
        "majority_test_accuracy": float(max(np.mean(y[test]), 1 - np.mean(y[test]))),
        "C": probe.C, "val_accuracy": probe.val_accuracy, "test_accuracy": probe.test_accuracy,
        "nonzero_weights": probe.nonzero_weights, "top_unit": None,
    }
    out = Path(options.output_dir)
    if probe.nonzero_weights:  # else the probe found nothing better than the majority class: no top unit
        unit = results["top_unit"] = probe.top_feature
        single = Threshold.fit(x[train, unit], y[train])
        results.update(top_unit_weight=float(probe.classifier.coef_[0, unit]),
                       top_unit_threshold=single.threshold, top_unit_sign=single.sign,
                       top_unit_train_accuracy=single.accuracy(x[train, unit], y[train]),
                       top_unit_test_accuracy=single.accuracy(x[test, unit], y[test]))
        histogram_png({name: x[test][y[test] == k, unit] for k, name in enumerate(classes)}, out / "histogram.png",
                      f"unit {unit} of {type(model).__name__} on {len(test)} test texts")
    out.mkdir(parents=True, exist_ok=True)
    (out / "probe.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"{len(train)} train / {len(val)} val / {len(test)} test texts, {x.shape[1]} features, classes {classes}")
    print(f"L1 probe (C={probe.C:g}): test accuracy {probe.test_accuracy:.4f} with "
          f"{probe.nonzero_weights} non-zero weights (majority class {results['majority_test_accuracy']:.4f})")
    if results["top_unit"] is None:
        print("the probe kept no feature (every weight is zero): no top unit to report or plot")
        print(f"wrote {out / 'probe.json'}")
        return
    print(f"top unit {unit}: test accuracy {results['top_unit_test_accuracy']:.4f} alone, thresholded at "
          f"{single.threshold:.4g} on train")
    print(f"wrote {out / 'probe.json'} and {out / 'histogram.png'}")
