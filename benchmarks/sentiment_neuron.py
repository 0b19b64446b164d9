"""The sentiment neuron at CPU scale on SST, with the paper's protocol, and why a small mLSTM's features sit near the
majority class.

``mlstm-tiny`` (512 units) is pre-trained with ``radford fit`` on unlabelled text (SST's training sentences and the
Rotten Tomatoes snippets and plot summaries, less any sentence of SST's dev or test split), in chunks of
``--chunk_steps`` steps of one run whose learning rate decays over all of them, so that each ``radford fit`` stays a
few minutes; the checkpoints after 1, 2 and 4 chunks are the 1x, 2x and 4x models. A random mLSTM of the same shape
(one step at learning rate 0) and ``gpt2-tiny`` trained on the same text for ``--gpt_steps`` steps are the other
models. ``radford probe --data sst2`` (fit on train, C on dev, scored on test) probes the 4x mLSTM and the GPT, as a
user types it. The diagnostics radford has no command for are computed here on the same split with the same L1
probe (C swept up to 10 only: liblinear's L1 fits at larger C take minutes each here): for each mLSTM, the final
cell state that the paper and ``radford probe`` read, the same state after reading only each text's last 16 bytes
(and how closely it follows the full state), and the hidden state averaged over the text; and two baselines without
a model, the byte counts of each text and TF-IDF of its words and word pairs.

    OMP_NUM_THREADS=1 python benchmarks/sentiment_neuron.py --work /tmp/sn      # about 1.5 hours on 2 busy cores
    python benchmarks/sentiment_neuron.py --work /tmp/sn --chunk_steps 10 --gpt_steps 10   # a quick look

Every step keeps its result in ``--work`` (checkpoints, probe.json, features) and a second run with the same folder
reuses them. SST comes by name (``radford.data.datasets``: downloaded once, or from ``RADFORD_DATASETS_MIRROR``);
without its test split the figures are dev's, which also chose C, and the script says so.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
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
from radford.models.mlstm import left_padded
from radford.tokenizers.bytes import preprocess

MLSTM_RECIPE, GPT_RECIPE = "mlstm-tiny", "gpt2-tiny"
SNAPSHOTS = (1, 2, 4)  # chunks of pre-training after which the mLSTM is probed
TAIL = 16  # bytes: how far back does the final cell state remember?
DIAGNOSTIC_CS = tuple(C for C in DEFAULT_CS if C <= 10)


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


def newest(folder: Path, name: str) -> Path:
    return max(folder.glob(f"runs/**/{name}"), key=lambda p: p.stat().st_mtime)


def val_bpb(run: Path) -> float:
    """The last validation bits per byte a ``radford fit`` run logged."""
    with open(run / "metrics.csv", newline="") as file:
        return [float(row["val_bpb"]) for row in csv.DictReader(file) if row.get("val_bpb")][-1]


def fit(work: Path, folder: str, args: list[str]) -> Path:
    """``radford fit ARGS`` in ``work/folder`` (once: a second run reuses it); its last checkpoint."""
    if not any((work / folder).glob("runs/**/last.ckpt")):
        run_radford(["fit", *args], cwd=work / folder)
    return newest(work / folder, "last.ckpt")


def pretrain_mlstm(work: Path, data: Path, chunk_steps: int) -> dict[int, Path]:
    """Snapshots after the chunks in SNAPSHOTS of one run of ``max(SNAPSHOTS) * chunk_steps`` steps, each chunk its
    own ``radford fit`` resumed from the last."""
    total, resume, snapshots = chunk_steps * max(SNAPSHOTS), [], {}
    for chunk in range(1, max(SNAPSHOTS) + 1):
        snapshot = work / f"mlstm-{chunk * chunk_steps}-steps.ckpt"
        if not snapshot.is_file():
            args = ["fit", "--recipe", MLSTM_RECIPE, "--data.init_args.sources", f"[{data}]"]
            args += ["--trainer.max_steps", str(chunk * chunk_steps), "--model.init_args.decay_steps", str(total)]
            run_radford([*args, *resume], cwd=work / "pretrain")
            shutil.copy(newest(work / "pretrain", "last.ckpt"), snapshot)
            bpb = val_bpb(newest(work / "pretrain", "metrics.csv").parent)
            print(f"after {chunk * chunk_steps} steps: val {bpb:.3f} bits/byte", flush=True)
        resume = ["--ckpt_path", str(snapshot)]
        if chunk in SNAPSHOTS:
            snapshots[chunk] = snapshot
    return snapshots


def readouts(model, texts: list[str], batch_size: int = 64) -> dict[str, np.ndarray]:
    """Readouts of an mLSTM from a zero state, texts preprocessed and left-padded as ``MLSTM.features`` does: the
    final cell state (what ``features`` returns), the final cell state after only the last TAIL bytes, and the hidden
    state averaged over the text's bytes."""
    out = {}
    for name, tail in (("final cell state", None), (f"final cell state, last {TAIL} bytes only", TAIL)):
        encoded = [preprocess(text)[-tail if tail else 0 :] for text in texts]
        cells, means = np.empty((2, len(texts), model.hparams.hidden_size), np.float32)
        with torch.inference_mode():
            for rows in length_sorted_batches([len(e) for e in encoded], batch_size):
                ids, mask = left_padded([encoded[i] for i in rows])
                hs, (c, _) = model.rnn(model.embd(ids), mask=mask)
                cells[rows] = c.numpy()
                means[rows] = ((hs * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)).numpy()
        out[name] = cells
        if tail is None:
            out["mean hidden state over the text"] = means
    return out


def correlation(full: np.ndarray, tail: np.ndarray) -> float:
    """How closely the final state after the last bytes alone follows the full one: the median over units (that vary)
    of their correlation across texts. Scale-free: a trained cell state grows with the text's length."""
    full, tail = full - full.mean(0), tail - tail.mean(0)
    norms = np.sqrt((full**2).sum(0) * (tail**2).sum(0))
    varying = norms > 0
    return float(np.median((full * tail).sum(0)[varying] / norms[varying]))


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
    """radford probe's L1 probe on features ``x`` (C up to 10): scored accuracy and non-zero weights."""
    train, dev, scored = parts["train"], parts["dev"], parts.get("test", parts["dev"])
    probe = linear_probe((x[train], y[train]), (x[dev], y[dev]), (x[scored], y[scored]), penalty="l1", Cs=DIAGNOSTIC_CS)
    return probe.test_accuracy, probe.nonzero_weights


def row(label: str, accuracy: float, nonzero: int | str) -> None:
    print(f"| {label} | {accuracy:.4f} | {nonzero} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="folder for data, runs and results (default: a temporary one)")
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

    snapshots = pretrain_mlstm(work, jsonl, options.chunk_steps)
    mlstm_args = ["--recipe", MLSTM_RECIPE, "--data.init_args.sources", f"[{jsonl}]"]
    # The random baseline: the recipe's initialisation, saved after one step that changes nothing.
    models = {
        "random init": fit(
            work, "random", [*mlstm_args, "--trainer.max_steps", "1", "--model.init_args.learning_rate", "0"]
        )
    }
    models.update({f"{chunk}x ({chunk * options.chunk_steps} steps)": snapshots[chunk] for chunk in SNAPSHOTS})
    gpt = fit(
        work,
        "gpt",
        [
            "--recipe",
            GPT_RECIPE,
            "--data.init_args.sources",
            f"[{lines}]",
            "--trainer.max_steps",
            str(options.gpt_steps),
        ],
    )

    reports = {}
    for name, checkpoint in ((f"mLSTM {max(SNAPSHOTS)}x", snapshots[max(SNAPSHOTS)]), (GPT_RECIPE, gpt)):
        out = work / f"probe-{name.split()[0]}"
        if not (out / "probe.json").is_file():
            printed = run_radford(
                ["probe", "--checkpoint", str(checkpoint), "--data", "sst2", "--output_dir", str(out)], cwd=work
            )
            print(printed.stdout, end="", flush=True)
        reports[name] = json.loads((out / "probe.json").read_text())
    if options.figure:
        shutil.copy(work / "probe-mLSTM" / "histogram.png", options.figure)

    majority = max(np.mean(y[parts[scored]]), 1 - np.mean(y[parts[scored]]))
    print(
        f"\nSST binary: {len(parts['train'])} train / {len(parts['dev'])} dev / {len(parts.get('test', ()))} "
        f"test sentences, scored on {scored}.\n"
    )
    print(f"| features | {scored} accuracy, L1 probe | non-zero weights |\n| --- | --- | --- |")
    row("majority class (chance)", majority, "-")
    row("byte counts (256 frequencies)", *l1_probe(byte_counts(texts), y, parts))
    accuracy, vocabulary = tfidf(texts, y, parts)
    row(f"TF-IDF of words and word pairs ({vocabulary:,} terms), L2", accuracy, "-")
    for name, checkpoint in models.items():
        cache = work / f"readouts-{name.split()[0]}.npz"
        if not cache.is_file():
            print(f"readouts of the {name} mLSTM ...", file=sys.stderr, flush=True)
            np.savez(cache, **readouts(load(checkpoint), texts))
        features = dict(np.load(cache))
        full, tail = features["final cell state"], features[f"final cell state, last {TAIL} bytes only"]
        r = correlation(full[parts["train"]], tail[parts["train"]])
        for readout, x in features.items():
            note = f" (median correlation with the full state's units {r:.2f})" if readout.endswith("only") else ""
            row(f"mLSTM {name}: {readout}{note}", *l1_probe(x, y, parts))

    key = "test" if scored == "test" else "val"  # probe.json's names: dev is its "val"
    print(f"\n| radford probe --data sst2 | {scored} accuracy | non-zero weights | top unit | top unit alone |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in reports.items():
        top = "- | -" if r["top_unit"] is None else f"{r['top_unit']} | {r[f'top_unit_{key}_accuracy']:.4f}"
        print(
            f"| {name} ({r['features']} features: {r['feature']}) | {r[f'{key}_accuracy']:.4f} | "
            f"{r['nonzero_weights']} | {top} |"
        )
    print(f"\nwork folder: {work}")


if __name__ == "__main__":
    main()
