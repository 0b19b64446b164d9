"""``radford probe`` with the sentiment-neuron paper's protocol on SST: fit on train, C on dev, scored on test (or on
dev, said so, without a test split); by dataset name, by folder, by files; on the mLSTM and GPT-1 release formats."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from radford.cli import main
from radford.data import datasets
from tests.helpers import error_line
from tests.test_gpt1_release import write_release as write_gpt1_release
from tests.test_mlstm_release import write_release as write_mlstm_release

SST_TRAIN, SST_DEV = 6920, 872


@pytest.fixture(scope="module")
def sst(shared_data) -> Path:
    return shared_data / "datasets" / "sst2"


@pytest.fixture(scope="module")
def mlstm_release(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("release") / "sentiment-neuron"
    write_mlstm_release(folder)
    return folder


def write_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=["label", "sentence"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def small_splits(sst, tmp_path_factory) -> dict[str, Path]:
    """400 train sentences; dev's first 100 as dev, its next 150 as test: SST's own files in SST's layout."""
    read = lambda name: list(csv.DictReader(open(sst / name, encoding="utf-8")))  # noqa: E731, SIM115
    train, dev = read("train_binary_sent.csv"), read("dev_binary_sent.csv")
    folder = tmp_path_factory.mktemp("sst-small")
    return {
        "train": write_rows(folder / "train_binary_sent.csv", train[:400]),
        "dev": write_rows(folder / "dev_binary_sent.csv", dev[:100]),
        "test": write_rows(folder / "test_binary_sent.csv", dev[100:250]),
    }


def probe(capsys, out: Path, *args: str) -> tuple[dict, str]:
    main(["probe", *args, "--output_dir", str(out)])
    return json.loads((out / "probe.json").read_text()), capsys.readouterr().out


def test_train_dev_test_files(mlstm_release, small_splits, tmp_path, capsys):
    files = [str(small_splits[split]) for split in ("train", "dev", "test")]
    report, printed = probe(capsys, tmp_path, "--checkpoint", str(mlstm_release), "--data", *files)
    assert (report["train"], report["val"], report["test"]) == (400, 100, 150)
    assert report["scored_on"] == "test" and report["no_test_split"] is None
    assert 0 <= report["test_accuracy"] <= 1 and 0 <= report["val_accuracy"] <= 1
    assert report["classes"] == ["0", "1"] and report["features"] == 16
    # The report and the figure name the model and the feature they plot.
    assert (report["model"], report["feature"]) == ("MLSTM", "final cell state")
    assert "16 features: the final cell state of MLSTM (sentiment-neuron)" in printed
    assert "chosen on dev): test accuracy" in printed and "no test split" not in printed
    if report["top_unit"] is not None:
        assert report["top_unit_test_accuracy"] is not None
        assert Image.open(tmp_path / "histogram.png").size == (720, 440)


def test_a_folder_without_test_scores_dev_and_says_so(mlstm_release, small_splits, tmp_path, capsys):
    folder = tmp_path / "sst"
    folder.mkdir()
    for split in ("train", "dev"):
        shutil.copy(small_splits[split], folder)
    report, printed = probe(capsys, tmp_path / "out", "--checkpoint", str(mlstm_release), "--data", str(folder))
    assert (report["train"], report["val"], report["test"]) == (400, 100, 0)
    assert report["scored_on"] == "dev" and report["test_accuracy"] is None
    assert "has no test file" in report["no_test_split"]
    assert "no test split" in printed and "dev accuracy" in printed


def test_sst2_by_name_from_a_mirror_without_test(mlstm_release, shared_data, tmp_path, capsys, monkeypatch):
    """The whole of SST's train and dev: ../shared, as the mirror, has no test split, and the report says so."""
    monkeypatch.setenv(datasets.MIRROR, str(shared_data / "datasets"))
    monkeypatch.chdir(tmp_path)  # no file named sst2 here
    report, printed = probe(capsys, tmp_path / "out", "--checkpoint", str(mlstm_release), "--data", "sst2")
    assert (report["train"], report["val"], report["test"]) == (SST_TRAIN, SST_DEV, 0)
    assert report["scored_on"] == "dev" and "sst2/test_binary_sent.csv" in report["no_test_split"]
    assert abs(report["majority_val_accuracy"] - 444 / 872) < 1e-9  # dev: 444 positive, 428 negative
    assert "no test split" in printed


def test_a_gpt1_release_is_probed_with_its_tokenizer(shared_data, small_splits, tmp_path, capsys):
    folder = tmp_path / "gpt1"
    write_gpt1_release(folder, n_vocab=40478, n_ctx=64, n_embd=64, n_layer=1)
    for name in ("encoder_bpe_40000.json", "vocab_40000.bpe"):
        shutil.copy(shared_data / "assets" / "gpt1" / name, folder / name)
    files = [str(small_splits[split]) for split in ("train", "dev", "test")]
    report, printed = probe(capsys, tmp_path / "out", "--checkpoint", str(folder), "--data", *files)
    assert (report["model"], report["feature"], report["features"]) == (
        "GPT1",
        "final hidden state at the last token",
        64,
    )
    assert report["test"] == 150 and "the final hidden state at the last token of GPT1 (gpt1)" in printed


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ({"train_a.csv": "train", "dev_a.csv": "dev", "dev_b.csv": "dev"}, ["one dev file", "dev_a.csv, dev_b.csv"]),
        ({"train_a.csv": "train"}, ["one dev file", "beginning with dev or val"]),
    ],
    ids=["two-dev-files", "no-dev-file"],
)
def test_folder_mistakes_are_one_line(mlstm_release, small_splits, tmp_path, capsys, layout, expected):
    for name, split in layout.items():
        shutil.copy(small_splits[split], tmp_path / name)
    line = error_line(capsys, "probe", "--checkpoint", str(mlstm_release), "--data", str(tmp_path))
    assert all(fragment in line for fragment in expected), line


def test_data_mistakes_are_one_line(mlstm_release, small_splits, tmp_path, capsys):
    files = [str(small_splits[split]) for split in ("train", "dev", "test")]
    line = error_line(capsys, "probe", "--checkpoint", str(mlstm_release), "--data", *files, files[0])
    assert "--data takes one source, or the train, dev, test files" in line and "got 4" in line
    other = write_rows(tmp_path / "dev.csv", [{"label": "neutral", "sentence": "It exists."}])
    line = error_line(capsys, "probe", "--checkpoint", str(mlstm_release), "--data", files[0], str(other))
    assert "label 'neutral'" in line and "'0', '1'" in line
