"""The sentiment neuron (Radford et al. 2017, section 4) in miniature, on Rotten Tomatoes snippets (fresh or rotten).

The ``mlstm-tiny`` recipe's byte-level mLSTM is pre-trained with ``radford fit`` on unlabelled text only: the review
snippets of the training part of a fixed 80/20 split of the labelled rows, plus the plot summaries (never a test
snippet). ``radford probe`` then fits the L1 logistic regression on its final cell states (C chosen on a
validation part of the training split) and reports test accuracy with all units and with the top unit alone. Two
baselines on the same split: the same probe on a randomly initialised mLSTM of the same shape (``radford fit`` for
one step at learning rate 0, so that the checkpoint is the initialisation), and TF-IDF features of words and word
pairs with L2 logistic regression (scikit-learn, C chosen on the same validation part). Every radford command is a
subprocess, as a user would type it; the script prints them and a table.

    OMP_NUM_THREADS=1 python benchmarks/sentiment_neuron.py --figure docs/images/sentiment-neuron-histogram.png
    python benchmarks/sentiment_neuron.py --work /tmp/sn --steps 50      # a quick look

Data: ``$RADFORD_TEST_DATA`` (default ``../shared`` beside the repository).
"""

from __future__ import annotations

import argparse
import bz2
import csv
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from run_radford import run_radford
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from radford.eval.probe import DEFAULT_CS, split_indices

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RADFORD_TEST_DATA", REPO.parent / "shared"))
REVIEWS = SHARED / "datasets" / "rotten_tomatoes_corpus_full.csv.bz2"
RECIPE = "mlstm-tiny"
LABELS = ("fresh", "rotten")
TEST_FRACTION, VAL_FRACTION = 0.2, 0.1  # radford probe's defaults


def write_data(work: Path, seed: int) -> tuple[Path, Path, list[dict[str, str]]]:
    """labelled.jsonl (every fresh/rotten snippet, in file order: radford probe splits it) and pretrain.jsonl (the
    snippets of the probe's train and validation parts, and the plot summaries)."""
    with bz2.open(REVIEWS, "rt", encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    labelled = [{"text": r["text"], "label": r["category"]} for r in rows if r["category"] in LABELS]
    train, val, _ = split_indices(len(labelled), TEST_FRACTION, VAL_FRACTION, seed)
    seen = sorted([*train, *val])  # file order: snippets of one film stay together, as in the corpus
    pretrain = [labelled[i]["text"] for i in seen] + [r["text"] for r in rows if r["category"] == "plot"]
    work.mkdir(parents=True, exist_ok=True)
    labelled_file, pretrain_file = work / "labelled.jsonl", work / "pretrain.jsonl"
    labelled_file.write_text("".join(json.dumps(r) + "\n" for r in labelled), encoding="utf-8")
    pretrain_file.write_text("".join(json.dumps({"text": t}) + "\n" for t in pretrain), encoding="utf-8")
    return labelled_file, pretrain_file, labelled


def tfidf_baseline(labelled: list[dict[str, str]], seed: int) -> tuple[float, int]:
    """Test accuracy and vocabulary size of TF-IDF (words and word pairs) + L2 logistic regression, C on val."""
    texts = [r["text"] for r in labelled]
    y = np.array([LABELS.index(r["label"]) for r in labelled])
    train, val, test = split_indices(len(labelled), TEST_FRACTION, VAL_FRACTION, seed)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x_train = vectorizer.fit_transform([texts[i] for i in train])
    x_val, x_test = (vectorizer.transform([texts[i] for i in part]) for part in (val, test))
    fits = [LogisticRegression(C=C, max_iter=1000).fit(x_train, y[train]) for C in DEFAULT_CS]
    best = max(fits, key=lambda fit: fit.score(x_val, y[val]))  # the first of equals: the strongest penalty
    return float(best.score(x_test, y[test])), x_train.shape[1]


def last_metric(run: Path, name: str) -> float:
    """The last value of a metric a ``radford fit`` run logged in its metrics.csv."""
    with open(run / "metrics.csv", newline="") as file:
        return [float(row[name]) for row in csv.DictReader(file) if row.get(name)][-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="folder for data and runs (default: a temporary one)")
    parser.add_argument("--steps", type=int, help="pre-training steps (default: the recipe's)")
    parser.add_argument("--seed", type=int, default=0, help="the split's seed (radford probe --seed)")
    parser.add_argument("--figure", type=Path, help="copy the trained mLSTM's histogram here")
    options = parser.parse_args()
    if not REVIEWS.is_file():
        sys.exit(f"{REVIEWS} not found: set RADFORD_TEST_DATA to the folder holding datasets/")
    work = (options.work or Path(tempfile.mkdtemp(prefix="sentiment-neuron-"))).resolve()
    labelled_file, pretrain_file, labelled = write_data(work, options.seed)
    steps = [] if options.steps is None else ["--trainer.max_steps", str(options.steps)]
    data = ["--data.init_args.sources", f"[{pretrain_file}]"]

    fit_time = run_radford(["fit", "--recipe", RECIPE, *data, *steps], cwd=work / "pretrain").seconds
    run = sorted((work / "pretrain" / "runs" / RECIPE).glob("version_*"))[-1]
    # The random baseline: the recipe's initialisation, saved after one step that changes nothing.
    run_radford(["fit", "--recipe", RECIPE, *data, "--trainer.max_steps", "1", "--model.init_args.learning_rate",
                 "0"], cwd=work / "random")
    random_run = sorted((work / "random" / "runs" / RECIPE).glob("version_*"))[-1]

    results = {}
    for name, checkpoint in (("trained", run), ("random", random_run)):
        report = run_radford(["probe", "--checkpoint", str(checkpoint / "checkpoints" / "last.ckpt"), "--data",
                              str(labelled_file), "--seed", str(options.seed), "--output_dir",
                              str(work / f"probe-{name}")], cwd=work)
        print(report.stdout, end="", flush=True)
        results[name] = json.loads((work / f"probe-{name}" / "probe.json").read_text())
    tfidf_accuracy, vocabulary = tfidf_baseline(labelled, options.seed)
    if options.figure:
        options.figure.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "probe-trained" / "histogram.png", options.figure)

    trained = results["trained"]
    print(f"\nRotten Tomatoes fresh/rotten: {trained['train']} train / {trained['val']} val / {trained['test']} test "
          f"snippets (seed {options.seed}); majority class {trained['majority_test_accuracy']:.1%} of test.")
    print(f"Pre-training ({RECIPE}): {pretrain_file.stat().st_size / 1e6:.2f} MB of JSONL, "
          f"{last_metric(run, 'step') + 1:.0f} steps in {fit_time / 60:.1f} min, "
          f"final val {last_metric(run, 'val_bpb'):.3f} bits/byte.\n")
    print("| features | test acc, all features | non-zero weights | top unit | test acc, top unit alone |")
    print("| --- | --- | --- | --- | --- |")
    for name, label in (("trained", "mLSTM, pre-trained"), ("random", "mLSTM, random init")):
        r = results[name]
        single = f"{r['top_unit_test_accuracy']:.4f}" if r["top_unit"] is not None else "-"
        print(f"| {label} ({r['features']} units) | {r['test_accuracy']:.4f} | {r['nonzero_weights']} | "
              f"{r['top_unit'] if r['top_unit'] is not None else '-'} | {single} |")
    print(f"| TF-IDF words + pairs ({vocabulary:,} terms), L2 | {tfidf_accuracy:.4f} | - | - | - |")
    print(f"\nwork folder: {work}")


if __name__ == "__main__":
    main()
