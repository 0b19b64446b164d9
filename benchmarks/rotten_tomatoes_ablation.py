"""GPT-1's ablation (paper section 5, table 5) in miniature, on Rotten Tomatoes review snippets (fresh or rotten).

A small GPT (the ``gpt2-tiny`` recipe: 4 layers, 128 wide, 128 positions, a byte-level BPE of 4,096 tokens) is
pre-trained with ``radford fit`` on unlabelled text: the review snippets of the training split, the plot
summaries, and Tiny Shakespeare. It is then fine-tuned with ``radford fit --recipe gpt2-finetune`` three ways, all
with the same tokenizer, epochs, batches and learning rate (5e-4 for this small model, chosen before any run and
the same for all three; the recipe's 6.25e-5 is the paper's for 117M parameters):

    (a) pretrained, auxiliary LM loss (lm_coef 0.5)   the paper's full method
    (b) pretrained, no auxiliary LM loss (lm_coef 0)  table 5, "Transformer w/o aux LM"
    (c) from scratch, lm_coef 0.5                     table 5, "Transformer w/o pre-training"

and each is scored by ``radford test`` on a fixed seeded 20 % of the fresh/rotten snippets. Every command is a
subprocess, as a user would type it; the script prints them and a table. Data: ``$RADFORD_TEST_DATA`` (default
``../shared`` beside the repository). About 25 minutes on 2 idle CPU cores. For each label budget it also runs
``radford predict`` for (a) and (c) and prints an exact McNemar test of their disagreements on the test split.

    python benchmarks/rotten_tomatoes_ablation.py                        # work files in a temporary folder
    python benchmarks/rotten_tomatoes_ablation.py --work /tmp/rt --pretrain_steps 200 --epochs 1   # a quick look
"""

from __future__ import annotations

import argparse
import bz2
import csv
import json
import math
import os
import random
import sys
import tempfile
from pathlib import Path

from run_radford import run_radford

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RADFORD_TEST_DATA", REPO.parent / "shared"))
REVIEWS = SHARED / "datasets" / "rotten_tomatoes_corpus_full.csv.bz2"
SHAKESPEARE = SHARED / "datasets" / "tinyshakespeare.txt"
PRETRAIN_RECIPE = "gpt2-tiny"
FINETUNE_RECIPE = "gpt2-finetune"
LABELS = ("fresh", "rotten")
VARIANTS = {  # name: (pretrained, lm_coef)
    "a": (True, 0.5),
    "b": (True, 0.0),
    "c": (False, 0.5),
}


def write_jsonl(path: Path, records: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_data(work: Path, seed: int) -> tuple[list[dict[str, str]], list[dict[str, str]], Path]:
    """The fixed 80/20 split of the fresh/rotten snippets, and the pre-training text file: the training split's
    snippets (never the test split's) and the plot summaries, one per line."""
    with bz2.open(REVIEWS, "rt", encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    labelled = [{"text": r["text"], "label": r["category"]} for r in rows if r["category"] in LABELS]
    random.Random(seed).shuffle(labelled)
    cut = int(0.8 * len(labelled))
    train, test = labelled[:cut], labelled[cut:]
    text = work / "pretrain" / "reviews_and_plots.txt"
    text.parent.mkdir(exist_ok=True)
    plots = [r["text"] for r in rows if r["category"] == "plot"]
    text.write_text("\n".join([r["text"] for r in train] + plots) + "\n", encoding="utf-8")
    return train, test, text


def test_metrics(run: Path) -> dict[str, float]:
    """The test_* values a ``radford test`` run logged in its metrics.csv."""
    with open(run / "metrics.csv", newline="") as file:
        return {k: float(v) for row in csv.DictReader(file) for k, v in row.items() if k.startswith("test_") and v}


def mcnemar(first: list[bool], second: list[bool]) -> tuple[int, int, float]:
    """The disagreements of two classifiers on the same examples, and the exact two-sided McNemar p-value."""
    only_first = sum(a and not b for a, b in zip(first, second, strict=True))
    only_second = sum(b and not a for a, b in zip(first, second, strict=True))
    n = only_first + only_second
    tail = sum(math.comb(n, i) for i in range(min(only_first, only_second) + 1)) / 2**n if n else 0.5
    return only_first, only_second, min(1.0, 2 * tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="folder for data, runs and token caches (default: a temporary one)")
    parser.add_argument("--pretrain_steps", type=int, default=4000, help="gpt2-tiny steps of 16 x 128 tokens")
    parser.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs (the paper's 3)")
    parser.add_argument(
        "--learning_rate",
        type=float,
        default=5e-4,
        help="fine-tuning rate for all variants: the paper's 6.25e-5 is for a 117M model",
    )
    parser.add_argument(
        "--train_examples",
        type=int,
        nargs="+",
        help="fine-tune on the first N labelled training snippets (several N: a learning curve); "
        "default: all of the training split",
    )
    parser.add_argument(
        "--pretrained",
        type=Path,
        help="a gpt2-tiny checkpoint pre-trained on this --work folder's text by an earlier run: skips pre-training",
    )
    parser.add_argument("--seed", type=int, default=1337)
    options = parser.parse_args()
    for path in (REVIEWS, SHAKESPEARE):
        if not path.is_file():
            sys.exit(f"{path} not found: set RADFORD_TEST_DATA to the folder holding datasets/")
    work = options.work or Path(tempfile.mkdtemp(prefix="rt-ablation-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["RADFORD_CACHE"] = str(work / "cache")  # the subprocesses cache tokens here, not in ~/.cache
    train_records, test_records, reviews = write_data(work, options.seed)
    train, test = write_jsonl(work / "train.jsonl", train_records), write_jsonl(work / "test.jsonl", test_records)
    majority = max(sum(r["label"] == label for r in test_records) for label in LABELS) / len(test_records)

    if options.pretrained:
        pretrained, pretrain_note = options.pretrained.resolve(), f"reused {options.pretrained}"
    else:
        seconds = run_radford(
            [
                "fit",
                "--recipe",
                PRETRAIN_RECIPE,
                "--seed_everything",
                str(options.seed),
                "--data.init_args.sources",
                f"[{reviews},{SHAKESPEARE}]",
                "--trainer.max_steps",
                str(options.pretrain_steps),
            ],
            cwd=work / "pretrain",
        ).seconds
        pretrained = sorted((work / "pretrain" / "runs" / PRETRAIN_RECIPE).glob("version_*"))[-1] / "checkpoints"
        pretrained /= "last.ckpt"
        pretrain_note = f"{options.pretrain_steps} steps, {seconds / 60:.1f} min"

    from radford import recipes

    # (c) has the pre-trained model's architecture, read from the same recipe.
    architecture = recipes.load(recipes.find(PRETRAIN_RECIPE))["model"]["init_args"]
    scratch = [
        f"--model.init_args.{name}={architecture[name]}" for name in ("block_size", "n_layer", "n_head", "n_embd")
    ]
    common = [
        "--seed_everything",
        str(options.seed),
        "--data.init_args.tokenizer.init_args.path",
        str(pretrained),
        "--data.init_args.val",
        "null",
        "--data.init_args.test",
        str(test),
        "--data.init_args.labels",
        f"[{','.join(LABELS)}]",
        "--data.init_args.max_length",
        str(architecture["block_size"]),
        "--model.init_args.learning_rate",
        str(options.learning_rate),
    ]
    results = []
    correct: dict[tuple[int, str], list[bool]] = {}
    for size in options.train_examples or [len(train_records)]:
        train = write_jsonl(work / f"train-{size}.jsonl", train_records[:size])
        for name, (use_pretrained, lm_coef) in VARIANTS.items():
            folder = work / f"{name}-{size}"
            folder.mkdir(exist_ok=True)
            model = [
                "--model.init_args.pretrained",
                str(pretrained) if use_pretrained else "null",
                "--model.init_args.lm_coef",
                str(lm_coef),
                *([] if use_pretrained else [*scratch, "--model.init_args.post_norm=false"]),
            ]
            args = ["--recipe", FINETUNE_RECIPE, *common, "--data.init_args.train", str(train), *model]
            seconds = run_radford(["fit", *args, "--trainer.max_epochs", str(options.epochs)], cwd=folder).seconds
            runs = folder / "runs" / FINETUNE_RECIPE
            checkpoint = sorted(runs.glob("version_*"))[-1] / "checkpoints" / "last.ckpt"
            run_radford(["test", *args, "--ckpt_path", str(checkpoint)], cwd=folder)
            metrics = test_metrics(sorted(runs.glob("version_*"))[-1])
            results.append((size, name, use_pretrained, lm_coef, seconds, metrics))
            predictions = folder / "test-predictions.jsonl"
            run_radford(
                [
                    "predict",
                    *args,
                    "--ckpt_path",
                    str(checkpoint),
                    "--data.init_args.predict",
                    str(test),
                    "--trainer.callbacks+=WritePredictions",
                    "--trainer.callbacks.init_args.path",
                    str(predictions),
                ],
                cwd=folder,
            )
            correct[size, name] = [
                json.loads(line)["prediction"] == record["label"]
                for line, record in zip(predictions.read_text().splitlines(), test_records, strict=True)
            ]

    print(
        f"\nRotten Tomatoes fresh/rotten: {len(train_records)} train, {len(test_records)} test snippets; majority "
        f"class {majority:.1%} of test. Pre-training: {pretrain_note}. Fine-tuning: {options.epochs} epochs, "
        f"lr {options.learning_rate}."
    )
    print("\n| labelled examples | variant | pre-trained | lm_coef | test acc | test F1 (macro) | test MCC | time |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for size, name, use_pretrained, lm_coef, seconds, metrics in results:
        print(
            f"| {size} | ({name}) | {'yes' if use_pretrained else 'no'} | {lm_coef} | {metrics['test_acc']:.4f} | "
            f"{metrics['test_f1']:.4f} | {metrics['test_mcc']:.4f} | {seconds / 60:.1f} min |"
        )
    for size in options.train_examples or [len(train_records)]:
        only_a, only_c, p = mcnemar(correct[size, "a"], correct[size, "c"])
        print(
            f"\n{size} labelled: (a) right where (c) is wrong on {only_a} snippets, the reverse on {only_c}; "
            f"exact McNemar two-sided p = {p:.4f}"
        )
    print(f"\nwork folder: {work}")


if __name__ == "__main__":
    main()
