"""``radford probe``: the sentiment neuron's analysis (Radford et al. 2017, section 4) for any model with features.

A model is probed through the text side of the features protocol (``radford.eval.probe.TextFeatures``): the mLSTM
returns its final cell state after each text (as OpenAI's encoder's ``transform``), GPT its final hidden state at each
text's last token; any registered model that declares ``feature_input = "texts"`` is probed the same way, whatever the
checkpoint: a radford .ckpt, a Hugging Face GPT folder, OpenAI's sentiment-neuron or GPT-1 release.

The paper's protocol (section 4.1, and ``train_with_reg_cv`` in OpenAI's repository): an L1-regularised logistic
regression fitted on the train split, C chosen on dev, test scored (``radford.eval.probe.linear_probe``). ``--data``
names the splits: a dataset (``sst2``: its train, dev and test files), a folder of ``train*``/``dev*``/``test*`` files,
or the files in that order. Without a test split the figures are dev's, which also chose C, and the report says so.
One labelled file is split by ``--seed`` instead (``split_indices``: ``--test_fraction`` for test, then
``--val_fraction`` of the rest for dev). The report gives the accuracy, how many features have a non-zero weight, the
feature with the largest weight (the "sentiment unit"), and that single feature's accuracy as a classifier thresholded
where it best splits the training texts. It writes ``probe.json`` and ``histogram.png`` (the top feature's values per
class on the scored split: the paper's figure 3, titled with the model and the feature) to ``--output_dir``: by
default beside the checkpoint's run, as ``radford validate`` writes (``runs/<recipe>/version_N/probe/``), or
``runs/probe/<name>/`` for a checkpoint that is not in a run folder (a Hugging Face folder, OpenAI's releases; see
``radford.runs.beside_checkpoint``), never into the working directory itself or the model's folder.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radford.cli import ArgumentParser
from radford.errors import RadfordError

FEATURE_CHUNK = 512  # texts per call of features(): the progress line moves on this often
CLASS_COLOURS = ((66, 133, 244, 140), (234, 67, 53, 140))  # translucent, so overlapping bars show both
SPLITS = ("train", "dev", "test")
SPLIT_PREFIXES = {"train": ("train",), "dev": ("dev", "val"), "test": ("test",)}
TEXT_FIELDS = ("text", "sentence")  # looked for, in order, when --text_field is not given


def read_split(path: str, text_field: str | None, label_field: str) -> tuple[list[str], list[str]]:
    """Texts and labels (as text) of a CSV or JSONL file or dataset name. Without ``text_field``, the first of
    ``TEXT_FIELDS`` that the first record has (SST's files name it ``sentence``)."""
    from radford.data.records import field, read_records

    texts, labels = [], []
    for where, record in read_records(path):
        if text_field is None:
            text_field = next((name for name in TEXT_FIELDS if name in record), TEXT_FIELDS[0])
        text = field(where, record, text_field)
        if not isinstance(text, str):
            raise RadfordError(f"{where}: field {text_field!r} is {type(text).__name__}, not text")
        texts.append(text)
        labels.append(str(field(where, record, label_field)))
    if not texts:
        raise RadfordError(f"{path} holds no records")
    return texts, labels


def two_classes(path: str, label_field: str, labels: Sequence[str]) -> list[str]:
    """The two class names of a split's labels, sorted: a sentiment probe tells two classes apart."""
    classes = sorted(set(labels))
    if len(classes) != 2:
        raise RadfordError(
            f"{path}: field {label_field!r} must hold exactly two classes for a sentiment probe, "
            f"found {len(classes)}: {', '.join(map(repr, classes[:10]))}"
        )
    return classes


def read_labelled(path: str, text_field: str | None, label_field: str) -> tuple[list[str], np.ndarray, list[str]]:
    """Texts, 0/1 labels and the two class names (sorted) of a CSV or JSONL file or dataset name."""
    texts, labels = read_split(path, text_field, label_field)
    classes = two_classes(path, label_field, labels)
    return texts, np.array([classes.index(label) for label in labels]), classes


@dataclass
class Labelled:
    """Every text of the splits, with 0/1 labels, and each split's rows: train, dev and, when there is one, test."""

    texts: list[str]
    labels: np.ndarray
    classes: list[str]
    parts: dict[str, np.ndarray]
    no_test: str | None = None  # why there is no test split


def split_sources(data: Sequence[str]) -> tuple[dict[str, str], str | None]:
    """The file (or dataset name) of each split that ``--data`` names, and why there is no test split. One file
    to be split by seed comes back as ``{"all": file}``."""
    from radford.data import datasets

    if len(data) > len(SPLITS):
        raise RadfordError(f"--data takes one source, or the {', '.join(SPLITS)} files in that order; got {len(data)}")
    if len(data) > 1:
        return dict(zip(SPLITS, data, strict=False)), None if len(data) == len(SPLITS) else "only train and dev given"
    source = data[0]
    path = Path(source).expanduser()
    if path.is_dir():
        return folder_splits(path)
    if not path.exists() and f"{source}/train" in datasets.DATASETS:
        sources = {split: f"{source}/{split}" for split in SPLITS if f"{source}/{split}" in datasets.DATASETS}
        try:
            datasets.resolve(sources.get("test", source))  # fetched now, to know whether it can be had
        except RadfordError as error:  # a mirror without it (../shared has no SST test split), or no network
            return {split: name for split, name in sources.items() if split != "test"}, str(error)
        return sources, None if "test" in sources else f"dataset {source!r} has none"
    return {"all": source}, None


def folder_splits(folder: Path) -> tuple[dict[str, str], str | None]:
    """A folder's train, dev and test files, told by how their names begin (``train_binary_sent.csv``)."""
    from radford.data.records import RECORD_FORMATS, file_format

    files = sorted(f for f in folder.iterdir() if f.is_file() and file_format(f) in RECORD_FORMATS)
    found = {}
    for split in SPLITS:
        matches = [f for f in files if f.name.lower().startswith(SPLIT_PREFIXES[split])]
        if len(matches) > 1 or (not matches and split != "test"):
            named = ", ".join(f.name for f in files) or "no .csv or .jsonl file"
            raise RadfordError(
                f"{folder} must hold one {split} file (a name beginning with "
                f"{' or '.join(SPLIT_PREFIXES[split])}); it holds {named}"
            )
        if matches:
            found[split] = str(matches[0])
    return found, None if "test" in found else f"{folder} has no test file"


def read_splits(
    data: Sequence[str], text_field: str | None, label_field: str, test_fraction: float, val_fraction: float, seed: int
) -> Labelled:
    """The labelled texts ``--data`` names, split as the probe uses them."""
    from radford.eval.probe import split_indices

    sources, no_test = split_sources(data)
    if "all" in sources:
        texts, labels, classes = read_labelled(sources["all"], text_field, label_field)
        train, dev, test = split_indices(len(texts), test_fraction, val_fraction, seed)
        if min(len(train), len(dev), len(test)) == 0:
            raise RadfordError(
                f"{sources['all']}: {len(texts)} texts are too few to split into train ({len(train)}), "
                f"validation ({len(dev)}) and test ({len(test)})"
            )
        return Labelled(texts, labels, classes, {"train": train, "dev": dev, "test": test})
    texts, labels, parts = [], [], {}
    for split, source in sources.items():
        split_texts, split_labels = read_split(source, text_field, label_field)
        parts[split] = np.arange(len(texts), len(texts) + len(split_texts))
        texts += split_texts
        labels += split_labels
    classes = two_classes(sources["train"], label_field, labels[: len(parts["train"])])
    strange = next((label for label in labels if label not in classes), None)
    if strange is not None:
        raise RadfordError(
            f"label {strange!r} of {label_field!r} is not one of the train split's classes "
            f"{', '.join(map(repr, classes))}"
        )
    return Labelled(texts, np.array([classes.index(label) for label in labels]), classes, parts, no_test)


def extract(model, texts: Sequence[str]) -> np.ndarray:
    """``model.features`` of every text, in chunks, with a progress line on stderr."""
    start, rows = time.perf_counter(), []
    for first in range(0, len(texts), FEATURE_CHUNK):
        rows.append(model.features(texts[first : first + FEATURE_CHUNK]).float().cpu().numpy())
        done = min(first + FEATURE_CHUNK, len(texts))
        print(
            f"\rfeatures: {done}/{len(texts)} texts, {time.perf_counter() - start:.0f} s",
            end="",
            file=sys.stderr,
            flush=True,
        )
    print(file=sys.stderr)
    features = np.concatenate(rows)
    if features.shape[0] != len(texts) or features.ndim != 2:
        raise RadfordError(
            f"{type(model).__name__}.features returned shape {features.shape} for {len(texts)} "
            "texts; the protocol is (texts, features)"
        )
    return features


def histogram_png(values: dict[str, np.ndarray], path: Path, title: str, xlabel: str, bins: int = 40) -> None:
    """A histogram per class of one feature's values, overlaid, as a PNG (Pillow; no plotting library); ``xlabel``
    says what the values are."""
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
        draw.text(
            (x, top + plot_h + 6),
            f"{edges[0] + k * (edges[-1] - edges[0]) / 4:.2f}",
            fill="black",
            font=font,
            anchor="ma",
        )
        y = top + plot_h - k * plot_h / 4
        draw.text((left - 6, y), str(round(k * peak / 4)), fill="black", font=font, anchor="rm")
    draw.text((width / 2, 12), title, fill="black", font=font, anchor="ma")
    draw.text((left + plot_w / 2, height - 18), xlabel, fill="black", font=font, anchor="ma")
    for row, (name, colour) in enumerate(zip(values, CLASS_COLOURS, strict=True)):
        y = top + 8 + row * 20
        draw.rectangle([left + plot_w - 130, y, left + plot_w - 116, y + 14], fill=colour[:3])
        draw.text((left + plot_w - 110, y), f"{name} ({len(values[name])})", fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert("RGB").save(path)


def main(args: Sequence[str]) -> None:
    """Fit an L1 linear probe on a model's features of labelled texts; find and plot the top unit."""
    parser = ArgumentParser(prog="radford probe", description=main.__doc__)
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="a radford .ckpt, a Hugging Face GPT folder, or OpenAI's sentiment-neuron or GPT-1 release",
    )
    parser.add_argument(
        "--data",
        required=True,
        nargs="+",
        metavar="SOURCE",
        help="a dataset (sst2), a folder of train/dev/test files, the train dev [test] files, or one "
        "labelled file to split by --seed (.csv or .jsonl, optionally .bz2/.gz)",
    )
    parser.add_argument("--text_field", help=f"default: the first of {', '.join(TEXT_FIELDS)} the data has")
    parser.add_argument("--label_field", default="label", help="two classes, e.g. positive/negative")
    parser.add_argument("--test_fraction", type=float, default=0.2, help="of one file, held out for test")
    parser.add_argument("--val_fraction", type=float, default=0.1, help="of one file less test, to choose C on")
    parser.add_argument("--seed", type=int, default=0, help="draws the split of one file")
    parser.add_argument(
        "--output_dir",
        help="where probe.json and histogram.png are written (default: <run>/probe/ beside the checkpoint's run, "
        "else runs/probe/<name>/)",
    )
    options = parser.parse_args(args)
    for name in ("test_fraction", "val_fraction"):
        if not 0.0 < getattr(options, name) < 1.0:
            raise RadfordError(f"--{name} must be between 0 and 1 (exclusive), got {getattr(options, name)}")

    from radford.checkpoints import load
    from radford.eval.probe import Threshold, linear_probe
    from radford.runs import beside_checkpoint, shown

    data = read_splits(
        options.data, options.text_field, options.label_field, options.test_fraction, options.val_fraction, options.seed
    )
    y, parts = data.labels, data.parts
    if len(np.unique(y[parts["train"]])) < 2:
        raise RadfordError(f"{' '.join(options.data)}: the train split has one class only; a probe needs both")
    model = load(options.checkpoint)
    if getattr(model, "feature_input", None) != "texts":
        raise RadfordError(
            f"{options.checkpoint} holds a {type(model).__name__}, which has no features of texts to "
            "probe (models that have: feature_input = 'texts', as GPT and the mLSTM)"
        )
    # What the features are, for the report and the figure: each model says (mLSTM: its final cell state).
    feature = getattr(model, "feature_description", "features")
    model_name = f"{type(model).__name__} ({Path(options.checkpoint).name})"
    x = extract(model, data.texts)
    scored = "test" if "test" in parts else "dev"  # without a test split, dev: the report says so
    train, dev, test = parts["train"], parts["dev"], parts[scored]
    probe = linear_probe((x[train], y[train]), (x[dev], y[dev]), (x[test], y[test]), penalty="l1")
    majority = {split: float(max(np.mean(y[rows]), 1 - np.mean(y[rows]))) for split, rows in parts.items()}
    results = {
        "checkpoint": options.checkpoint,
        "model": type(model).__name__,
        "feature": feature,
        "data": options.data,
        "classes": data.classes,
        "seed": options.seed,
        "train": len(train),
        "val": len(dev),
        "test": len(parts.get("test", ())),
        "scored_on": scored,
        "no_test_split": data.no_test,
        "features": x.shape[1],
        "C": probe.C,
        "val_accuracy": probe.val_accuracy,
        "test_accuracy": probe.test_accuracy if scored == "test" else None,
        "majority_val_accuracy": majority["dev"],
        "majority_test_accuracy": majority.get("test"),
        "nonzero_weights": probe.nonzero_weights,
        "top_unit": None,
    }
    print(
        f"{len(train)} train / {len(dev)} dev / {len(parts.get('test', ()))} test texts, classes {data.classes}; "
        f"{x.shape[1]} features: the {feature} of {model_name}"
    )
    if data.no_test:
        print(
            f"no test split ({data.no_test}): the accuracies are dev's, on which C was also chosen, so they flatter "
            "the probe"
        )
    print(
        f"L1 probe (C={probe.C:g}, chosen on dev): {scored} accuracy {probe.test_accuracy:.4f} with "
        f"{probe.nonzero_weights} non-zero weights (majority class {majority[scored]:.4f})"
    )
    out = Path(options.output_dir) if options.output_dir else beside_checkpoint(options.checkpoint, "probe")
    if probe.nonzero_weights:  # else the probe found nothing better than the majority class: no top unit
        unit = results["top_unit"] = probe.top_feature
        single = Threshold.fit(x[train, unit], y[train])
        results.update(
            top_unit_weight=float(probe.classifier.coef_[0, unit]),
            top_unit_threshold=single.threshold,
            top_unit_sign=single.sign,
            top_unit_train_accuracy=single.accuracy(x[train, unit], y[train]),
            top_unit_val_accuracy=single.accuracy(x[dev, unit], y[dev]),
            top_unit_test_accuracy=single.accuracy(x[test, unit], y[test]) if scored == "test" else None,
        )
        histogram_png(
            {name: x[test][y[test] == k, unit] for k, name in enumerate(data.classes)},
            out / "histogram.png",
            f"unit {unit} of {model_name} on {len(test)} {scored} texts",
            f"{feature}, unit {unit}",
        )
        print(
            f"top unit {unit}: {scored} accuracy {single.accuracy(x[test, unit], y[test]):.4f} alone, "
            f"thresholded at {single.threshold:.4g} on train"
        )
    else:
        print("the probe kept no feature (every weight is zero): no top unit to report or plot")
        # An earlier probe's figure there would pass for this one's.
        (out / "histogram.png").unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "probe.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    figure = f" and {shown(out / 'histogram.png')}" if results["top_unit"] is not None else ""
    print(f"wrote {shown(out / 'probe.json')}{figure}")
