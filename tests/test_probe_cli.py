"""``radford probe``: the split, the single-unit threshold, GPT's features, the whole command on an mLSTM and a
GPT checkpoint, and mistakes as one line."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from radford import runs
from radford.cli import main
from radford.eval.probe import Threshold, split_indices
from radford.models.gpt import GPT
from radford.models.mlstm import MLSTM
from radford.tokenizers import Char
from radford.tokenizers.bytes import ByteTokenizer
from tests.helpers import error_line
from tests.test_mlstm import save_checkpoint

POSITIVE = ("a delight", "wonderful", "great fun", "moving")
NEGATIVE = ("a mess", "awful", "dull", "a bore")
FILLER = ("The plot", "Its cast", "This sequel", "The score", "Every scene")


@pytest.fixture(scope="module")
def reviews(tmp_path_factory) -> Path:
    """Two hundred short reviews whose last words give the class."""
    rng = random.Random(0)
    lines = []
    for _ in range(200):
        label = rng.choice(("pos", "neg"))
        words = POSITIVE if label == "pos" else NEGATIVE
        lines.append(json.dumps({"text": f"{rng.choice(FILLER)} is {rng.choice(words)}.", "label": label}))
    path = tmp_path_factory.mktemp("probe") / "reviews.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def mlstm_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(
        MLSTM(hidden_size=32), tmp_path_factory.mktemp("mlstm") / "random.ckpt", ByteTokenizer().to_json()
    )


@pytest.fixture(scope="module")
def gpt(reviews) -> GPT:
    torch.manual_seed(0)
    tokenizer = Char()
    tokenizer.train([reviews.read_text(encoding="utf-8")])
    model = GPT(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16)
    model.tokenizer = tokenizer
    return model


def test_split_is_fixed_and_disjoint():
    train, val, test = split_indices(1000, 0.2, 0.1, seed=3)
    assert (len(train), len(val), len(test)) == (720, 80, 200)
    assert sorted([*train, *val, *test]) == list(range(1000))
    again = split_indices(1000, 0.2, 0.1, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))
    assert not np.array_equal(split_indices(1000, 0.2, 0.1, seed=4)[2], test)


@pytest.mark.parametrize("flip", [False, True])
def test_threshold_splits_the_training_values_best(flip):
    values = np.array([0.1, 0.4, 0.35, 0.8, 0.9, 0.7, 0.2])
    y = np.array([0, 0, 1, 1, 1, 1, 0])  # one value (0.35) on the wrong side of any cut
    y = 1 - y if flip else y
    single = Threshold.fit(values, y)
    assert single.sign == (-1 if flip else 1)
    assert single.accuracy(values, y) == pytest.approx(6 / 7)
    assert 0.4 <= single.threshold <= 0.7 or 0.2 <= single.threshold <= 0.35


def test_gpt_features_are_the_last_tokens_hidden_state(gpt):
    texts = ["The plot is dull.", "Its cast is wonderful, and every scene is great fun to watch.", "x"]
    together = gpt.features(texts, batch_size=3)  # padded to the longest, which is cut to block_size
    for k, text in enumerate(texts):
        ids = torch.tensor([gpt.tokenizer.encode(text)[-32:]])
        torch.testing.assert_close(together[k], gpt.hidden_states(ids)[0, -1])


def probe(capsys, *args: str) -> str:
    """What ``radford probe ARGS`` prints (run in this process: the CLI's own path is tested in test_mlstm)."""
    main(["probe", *args])
    return capsys.readouterr().out


def test_probe_on_an_mlstm(mlstm_checkpoint, reviews, tmp_path, capsys):
    out = tmp_path / "out"
    printed = probe(capsys, "--checkpoint", str(mlstm_checkpoint), "--data", str(reviews), "--output_dir", str(out))
    report = json.loads((out / "probe.json").read_text())
    assert (report["train"], report["val"], report["test"], report["features"]) == (144, 16, 40, 32)
    assert report["classes"] == ["neg", "pos"]
    # Even a random mLSTM's final cell state tells these endings apart; a linear probe reads it.
    assert report["test_accuracy"] >= 0.9 and report["test_accuracy"] > report["majority_test_accuracy"]
    assert 1 <= report["nonzero_weights"] <= 32 and 0 <= report["top_unit"] < 32
    assert 0.5 <= report["top_unit_test_accuracy"] <= 1 and report["top_unit_train_accuracy"] > 0.5
    assert f"top unit {report['top_unit']}" in printed
    assert Image.open(out / "histogram.png").size == (720, 440)


def test_probe_on_a_gpt(gpt, reviews, tmp_path, capsys):
    checkpoint = save_checkpoint(gpt, tmp_path / "gpt.ckpt", gpt.tokenizer.to_json())
    out = tmp_path / "out"
    probe(capsys, "--checkpoint", str(checkpoint), "--data", str(reviews), "--output_dir", str(out), "--seed", "1")
    report = json.loads((out / "probe.json").read_text())
    assert report["features"] == 16 and report["test_accuracy"] >= 0.8


def files(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def test_probe_writes_beside_the_checkpoints_run_and_nowhere_else(
    mlstm_checkpoint, reviews, tmp_path, monkeypatch, capsys
):
    """Without --output_dir the probe writes as radford validate does, in the checkpoint's run (found through
    ``latest``), or in runs/probe/<name>/ for a checkpoint in no run; never in the working directory itself."""
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "mlstm-tiny" / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(mlstm_checkpoint, run / "checkpoints" / "last.ckpt")
    runs.point_latest(run)
    (tmp_path / "models").mkdir()
    shutil.copy(mlstm_checkpoint, tmp_path / "models" / "random.ckpt")
    before = files(tmp_path)

    printed = probe(capsys, "--checkpoint", "runs/mlstm-tiny/latest/checkpoints/last.ckpt", "--data", str(reviews))
    assert files(tmp_path) - before == {
        "runs/mlstm-tiny/version_0/probe/probe.json",
        "runs/mlstm-tiny/version_0/probe/histogram.png",
    }
    assert "wrote runs/mlstm-tiny/version_0/probe/probe.json" in printed
    report = json.loads((run / "probe" / "probe.json").read_text())
    # The model's own words for its features (the protocol's feature_description), printed and recorded.
    assert report["feature"] == MLSTM.feature_description == "final cell state"
    assert "32 features: the final cell state of MLSTM" in printed

    before = files(tmp_path)
    probe(capsys, "--checkpoint", "models/random.ckpt", "--data", str(reviews))
    assert files(tmp_path) - before == {"runs/probe/models-random/probe.json", "runs/probe/models-random/histogram.png"}


@pytest.mark.parametrize(
    ("contents", "extra", "expected"),
    [
        (
            '{"text": "a", "label": 1}\n{"text": "b", "label": 2}\n{"text": "c", "label": 3}\n',
            [],
            ["exactly two classes", "found 3"],
        ),
        ('{"text": "a", "stars": 1}\n', [], ["line 1", "'label'", "text, stars"]),
        ('{"text": "a", "label": 1}\n', ["--test_fraction", "1.5"], ["--test_fraction", "1.5"]),
        ('{"text": "a", "label": 1}\n{"text": "b", "label": 2}\n', [], ["too few"]),
        ("not json\n", [], ["line 1", "not JSON"]),
    ],
    ids=["three-classes", "no-label", "fraction", "too-few", "not-json"],
)
def test_mistakes_are_one_line(mlstm_checkpoint, tmp_path, capsys, contents, extra, expected):
    data = tmp_path / "data.jsonl"
    data.write_text(contents, encoding="utf-8")
    line = error_line(capsys, "probe", "--checkpoint", str(mlstm_checkpoint), "--data", str(data), *extra)
    for fragment in expected:
        assert fragment in line, line


def test_unknown_format_is_one_line(mlstm_checkpoint, tmp_path, capsys):
    data = tmp_path / "data.parquet"
    data.write_text("x")
    line = error_line(capsys, "probe", "--checkpoint", str(mlstm_checkpoint), "--data", str(data))
    assert "unknown format" in line and ".csv" in line and ".jsonl" in line
