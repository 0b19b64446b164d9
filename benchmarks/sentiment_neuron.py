"""The sentiment neuron at CPU scale on SST, with the paper's protocol, and why a small mLSTM's features sit near the
majority class.

``mlstm-tiny`` (512 units) is pre-trained with ``radford fit`` on unlabelled text (SST's training sentences and the
Rotten Tomatoes snippets and plot summaries, less any sentence of SST's dev or test split), in chunks of
``--chunk_steps`` steps of one run whose learning rate decays over all of them, so that each ``radford fit`` stays a
few minutes; the checkpoints after 1, 2 and 4 chunks are the 1x, 2x and 4x models. A random mLSTM of the same shape
(one step at learning rate 0) and ``gpt2-tiny`` trained on the same text for ``--gpt_steps`` steps are the other
models. ``radford probe --data sst2`` (fit on train, C on dev, scored on test) probes the 4x mLSTM and the GPT, as a
user types it. The diagnostics radford has no command for are computed here on the same split, with the same L1
probe: other readouts of each mLSTM (the final hidden state, the hidden state averaged over the text, beside the
final cell state that the paper and ``radford probe`` read), how the cell state's values spread, and baselines
that need no model: the byte counts of each text and TF-IDF of its words and word pairs.

    OMP_NUM_THREADS=1 python benchmarks/sentiment_neuron.py --work /tmp/sn      # about 45 min on 2 busy cores
    python benchmarks/sentiment_neuron.py --work /tmp/sn --chunk_steps 10 --gpt_steps 10   # a quick look

SST comes by name (``radford.data.datasets``: downloaded once, or from ``RADFORD_DATASETS_MIRROR``); without its test
split the figures are dev's, which also chose C, and the script says so.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from run_radford import run_radford
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from radford.checkpoints import load
from radford.commands.probe import read_splits
from radford.data.records import read_records
from radford.eval.probe import DEFAULT_CS, linear_probe
from radford.models.common import length_sorted_batches
from radford.tokenizers.bytes import preprocess

MLSTM_RECIPE, GPT_RECIPE = "mlstm-tiny", "gpt2-tiny"
SNAPSHOTS = (1, 2, 4)  # chunks of pre-training after which the mLSTM is probed
READOUTS = ("final cell state", "final hidden state", "mean hidden state")


def pretraining_text(work: Path, texts: list[str], held_out: set[str]) -> tuple[Path, Path]:
    """SST's training sentences and the Rotten Tomatoes snippets and plot summaries, as JSONL (the mLSTM's bytes
    data) and as lines of text (the GPT's): unlabelled, and without any sentence of SST's dev or test split."""
    corpus = [*texts, *(r["text"] for _, r in read_records("rotten-tomatoes"))]
    kept = [t.replace("\n", " ").strip() for t in corpus if " ".join(t.split()) not in held_out]
    jsonl, lines = work / "pretrain.jsonl", work / "pretrain.txt"
    jsonl.write_text("".join(json.dumps({"text": t}) + "\n" for t in kept), encoding="utf-8")
    lines.write_text("\n".join(kept) + "\n", encoding="utf-8")
    print(
        f"pre-training text: {len(kept):,} texts, {lines.stat().st_size / 1e6:.2f} MB "
        f"({len(corpus) - len(kept)} dropped as sentences of SST's dev or test split)",
        flush=True,
    )
    return jsonl, lines


def newest_checkpoint(folder: Path) -> Path:
    return max(folder.glob("runs/**/last.ckpt"), key=lambda p: p.stat().st_mtime)


def last_val_bpb(folder: Path) -> float:
    """The last validation bits per byte that the newest ``radford fit`` run under ``folder`` logged."""
    metrics = max(folder.glob("runs/**/metrics.csv"), key=lambda p: p.stat().st_mtime)
    with open(metrics, newline="") as file:
        return [float(row["val_bpb"]) for row in csv.DictReader(file) if row.get("val_bpb")][-1]


def pretrain_mlstm(work: Path, data: Path, chunk_steps: int, chunks: int) -> dict[int, Path]:
    """Snapshots of one run of ``chunks * chunk_steps`` steps after the chunks in SNAPSHOTS, each chunk its own
    ``radford fit`` resumed from the last."""
    total, snapshots, resume = chunk_steps * chunks, {}, []
    for chunk in range(1, chunks + 1):
        run_radford(
            [
                "fit",
                "--recipe",
                MLSTM_RECIPE,
                "--data.init_args.sources",
                f"[{data}]",
                "--trainer.max_steps",
                str(chunk * chunk_steps),
                "--model.init_args.decay_steps",
                str(total),
                *resume,
            ],
            cwd=work / "pretrain",
        )
        last = newest_checkpoint(work / "pretrain")
        resume = ["--ckpt_path", str(last)]
        if chunk in SNAPSHOTS:
            snapshots[chunk] = shutil.copy(last, work / f"mlstm-{chunk * chunk_steps}-steps.ckpt")
            print(
                f"mLSTM after {chunk * chunk_steps} steps: val {last_val_bpb(work / 'pretrain'):.3f} bits/byte",
                flush=True,
            )
    return {chunk: Path(path) for chunk, path in snapshots.items()}


def readouts(model, texts: list[str], batch_size: int = 64) -> dict[str, np.ndarray]:
    """Three readouts of an mLSTM from a zero state, texts preprocessed and left-padded as ``MLSTM.features`` does:
    the final cell state (what ``features`` returns), the final hidden state, and the hidden state averaged over the
    text's bytes."""
    encoded = [preprocess(text) for text in texts]
    out = {name: np.empty((len(texts), model.hparams.hidden_size), np.float32) for name in READOUTS}
    with torch.inference_mode():
        for rows in length_sorted_batches([len(e) for e in encoded], batch_size):
            width = max(len(encoded[i]) for i in rows)
            ids = torch.zeros(len(rows), width, dtype=torch.long)
            mask = torch.zeros(len(rows), width, dtype=torch.bool)
            for row, i in enumerate(rows):
                ids[row, width - len(encoded[i]) :] = torch.tensor(list(encoded[i]))
                mask[row, width - len(encoded[i]) :] = True
            hs, (c, h) = model.rnn(model.embd(ids), mask=mask)
            mean = (hs * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            for name, value in zip(READOUTS, (c, h, mean), strict=True):
                out[name][rows] = value.numpy()
    return out


def byte_counts(texts: list[str]) -> np.ndarray:
    """How often each of the 256 bytes occurs in each preprocessed text, per byte of the text."""
    counts = np.zeros((len(texts), 256), np.float32)
    for row, text in enumerate(texts):
        data = np.frombuffer(preprocess(text), np.uint8)
        counts[row] = np.bincount(data, minlength=256) / len(data)
    return counts


def tfidf(texts: list[str], y: np.ndarray, parts: dict[str, np.ndarray]) -> tuple[float, int]:
    """Scored accuracy and vocabulary of TF-IDF (words and pairs) + L2 logistic regression, fit on train, C on dev."""
    train, dev, scored = parts["train"], parts["dev"], parts.get("test", parts["dev"])
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x_train = vectorizer.fit_transform([texts[i] for i in train])
    x_dev, x_scored = (vectorizer.transform([texts[i] for i in part]) for part in (dev, scored))
    fits = [LogisticRegression(C=C, max_iter=1000).fit(x_train, y[train]) for C in DEFAULT_CS]
    best = max(fits, key=lambda fit: fit.score(x_dev, y[dev]))  # the first of equals: the strongest penalty
    return float(best.score(x_scored, y[scored])), x_train.shape[1]


def l1_probe(x: np.ndarray, y: np.ndarray, parts: dict[str, np.ndarray]) -> tuple[float, int]:
    """radford probe's L1 probe on features ``x``: scored accuracy and non-zero weights."""
    train, dev, scored = parts["train"], parts["dev"], parts.get("test", parts["dev"])
    probe = linear_probe((x[train], y[train]), (x[dev], y[dev]), (x[scored], y[scored]), penalty="l1")
    return probe.test_accuracy, probe.nonzero_weights


def spread(cells: np.ndarray) -> str:
    """How the final cell state's values spread over texts: a unit that barely varies carries nothing to probe."""
    std = cells.std(0)
    return (
        f"|c| median {np.median(np.abs(cells)):.3g}, per-unit std median {np.median(std):.3g}, "
        f"units with std < 0.01: {int((std < 0.01).sum())}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="folder for data and runs (default: a temporary one)")
    parser.add_argument("--chunk_steps", type=int, default=120, help="mLSTM steps per radford fit (1x)")
    parser.add_argument("--gpt_steps", type=int, default=400, help="gpt2-tiny steps on the same text")
    parser.add_argument("--figure", type=Path, help="copy the 4x mLSTM's histogram here")
    options = parser.parse_args()
    work = (options.work or Path(tempfile.mkdtemp(prefix="sentiment-neuron-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = read_splits(["sst2"], None, "label", 0.2, 0.1, 0)
    texts, y, parts = data.texts, data.labels, data.parts
    scored = "test" if "test" in parts else "dev"
    if data.no_test:
        print(f"no test split ({data.no_test}): figures are dev's, on which C was also chosen", flush=True)
    held_out = {" ".join(texts[i].split()) for split in ("dev", "test") for i in parts.get(split, ())}
    jsonl, lines = pretraining_text(work, [texts[i] for i in parts["train"]], held_out)

    start = time.perf_counter()
    snapshots = pretrain_mlstm(work, jsonl, options.chunk_steps, max(SNAPSHOTS))
    fit_minutes = (time.perf_counter() - start) / 60
    run_radford(
        [
            "fit",
            "--recipe",
            MLSTM_RECIPE,
            "--data.init_args.sources",
            f"[{jsonl}]",
            "--trainer.max_steps",
            "1",
            "--model.init_args.learning_rate",
            "0",
        ],
        cwd=work / "random",
    )
    models = {
        "random init": newest_checkpoint(work / "random"),
        **{f"{chunk}x ({chunk * options.chunk_steps} steps)": path for chunk, path in snapshots.items()},
    }
    run_radford(
        [
            "fit",
            "--recipe",
            GPT_RECIPE,
            "--data.init_args.sources",
            f"[{lines}]",
            "--trainer.max_steps",
            str(options.gpt_steps),
        ],
        cwd=work / "gpt",
    )
    gpt = newest_checkpoint(work / "gpt")

    reports = {}
    for name, checkpoint in (("mLSTM 4x", snapshots[max(SNAPSHOTS)]), (GPT_RECIPE, gpt)):
        report = run_radford(
            [
                "probe",
                "--checkpoint",
                str(checkpoint),
                "--data",
                "sst2",
                "--output_dir",
                str(work / f"probe-{name.split()[0]}"),
            ],
            cwd=work,
        )
        print(report.stdout, end="", flush=True)
        reports[name] = json.loads((work / f"probe-{name.split()[0]}" / "probe.json").read_text())
    if options.figure:
        shutil.copy(work / "probe-mLSTM" / "histogram.png", options.figure)

    rows = []
    for name, checkpoint in models.items():
        print(f"readouts of the {name} mLSTM ...", file=sys.stderr, flush=True)
        features = readouts(load(checkpoint), texts)
        print(f"{name}: {spread(features['final cell state'][parts['train']])}", flush=True)
        rows += [(f"mLSTM {name}, {readout}", *l1_probe(x, y, parts)) for readout, x in features.items()]
    rows.append(("byte counts (256 frequencies)", *l1_probe(byte_counts(texts), y, parts)))
    tfidf_accuracy, vocabulary = tfidf(texts, y, parts)

    majority = max(np.mean(y[parts[scored]]), 1 - np.mean(y[parts[scored]]))
    print(
        f"\nSST binary: {len(parts['train'])} train / {len(parts['dev'])} dev / {len(parts.get('test', ()))} test "
        f"sentences; scored on {scored}; majority class {majority:.4f}. mLSTM pre-training: "
        f"{max(SNAPSHOTS)} x {options.chunk_steps} steps in {fit_minutes:.1f} min.\n"
    )
    print(f"| features | {scored} accuracy, L1 probe | non-zero weights |")
    print("| --- | --- | --- |")
    print(f"| majority class (chance) | {majority:.4f} | - |")
    for label, accuracy, nonzero in rows:
        print(f"| {label} | {accuracy:.4f} | {nonzero} |")
    print(f"| TF-IDF words + pairs ({vocabulary:,} terms), L2 | {tfidf_accuracy:.4f} | - |")
    print(f"\n| radford probe --data sst2 | {scored} accuracy | non-zero weights | top unit | top unit alone |")
    print("| --- | --- | --- | --- | --- |")
    key = "test" if scored == "test" else "val"  # probe.json's names: dev is its "val"
    for name, r in reports.items():
        top = "- | -" if r["top_unit"] is None else f"{r['top_unit']} | {r[f'top_unit_{key}_accuracy']:.4f}"
        print(
            f"| {name} ({r['features']} features: {r['feature']}) | {r[f'{key}_accuracy']:.4f} | "
            f"{r['nonzero_weights']} | {top} |"
        )
    print(f"\nwork folder: {work}")


if __name__ == "__main__":
    main()
