"""What a run shows: the progress bar's headline metrics, a model summary without 0 FLOPs, no Lightning noise, the
report at the end of fit and validate, and ``loss.png``."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import lightning as L
import torch
from PIL import Image

from radford import console, plot
from radford.tokenizers import Char
from tests.test_run_folders import radford, work  # noqa: F401  (work: the fixture)


def test_a_fit_reports_what_it_did_and_nothing_meaningless(work, capsys):  # noqa: F811
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        radford("fit", "--trainer.enable_progress_bar", "true")
    out, err = capsys.readouterr()
    assert not [w for w in caught if "LeafSpec" in str(w.message)]
    assert "Epoch 0/-2" not in out + err and "FLOPs" not in out + err and "Flops" not in out + err
    assert "v_num" not in out and "val_loss" in out.split("radford fit:")[0]  # in the bar, before the report
    report = out.split("radford fit: ")[1].splitlines()
    assert report[0].startswith("5 steps of tiny in ")
    rows = {line.split()[0]: line.split(maxsplit=1)[1] for line in report[1:]}
    assert rows["val_loss"].split()[0] != "" and "(best " in rows["val_loss"] and "at step" in rows["val_acc"]
    assert rows["run"] == "runs/tiny/version_0"
    assert rows["checkpoint"] == "runs/tiny/version_0/checkpoints/last.ckpt"
    assert rows["picture"] == "runs/tiny/version_0/loss.png"
    assert rows["next"] == "radford test --recipe tiny.yaml --ckpt_path runs/tiny/latest/checkpoints/last.ckpt"
    picture = Image.open(work / "runs" / "tiny" / "version_0" / "loss.png").convert("RGB")
    colours = set(picture.getdata())
    assert picture.size == plot.SIZE and plot.COLOURS[0] in colours and plot.COLOURS[1] in colours  # both curves


def test_validate_reports_its_metrics_once(work, capsys):  # noqa: F811
    radford("fit")
    capsys.readouterr()
    radford("validate", "--ckpt_path", "last")
    out = capsys.readouterr().out
    assert "Validate metric" not in out  # Lightning's table: the report says it
    lines = out[out.index("radford validate: ") :].splitlines()
    assert lines[0].startswith("radford validate: runs/tiny/version_0/checkpoints/last.ckpt in ")
    assert [line.split()[0] for line in lines[1:]] == ["val_loss", "val_acc", "results", "next"]
    assert lines[3].split() == ["results", "runs/tiny/version_0/validate"]


def test_model_summary_leaves_out_flops_it_did_not_count(capsys):
    data = [
        (" ", ["0"]),
        ("Name", ["layer"]),
        ("Type", ["Linear"]),
        ("Params", ["5"]),
        ("Mode", ["train"]),
        ("FLOPs", ["0"]),
    ]
    console.ModelSummary.summarize(data, 5, 5, 0.0, {"train": 1, "eval": 0}, total_flops=0)
    out = capsys.readouterr().out
    assert "FLOPs" not in out and out.splitlines()[0] == "  | Name  | Type   | Params | Mode"
    console.ModelSummary.summarize(data, 5, 5, 0.0, {"train": 1, "eval": 0}, total_flops=1200)
    assert "FLOPs" in capsys.readouterr().out


class LightningBar:
    """A stand-in for Lightning's bar, which shows the model's own ``prog_bar`` metrics and the version."""

    def on_validation_end(self, trainer, pl_module) -> None:
        pass

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        pass

    def get_metrics(self, trainer, pl_module) -> dict:
        return {"train_loss": 2.0, "v_num": 3}


class Bar(console._HeadlineMetrics, LightningBar):
    pass


def test_headline_metrics_join_the_progress_bar():
    metrics = {
        "train_loss": torch.tensor(2.0),
        "val_loss": torch.tensor(1.5),
        "val_ppl": torch.tensor(4.5),
        "tokens_per_sec": torch.tensor(15064.4),
        "lr-AdamW": torch.tensor(0.1),
    }
    trainer = SimpleNamespace(sanity_checking=False, callback_metrics=metrics, global_step=10, log_every_n_steps=10)
    bar = Bar()
    bar.on_validation_end(trainer, None)
    bar.on_train_batch_end(trainer, None, None, None, 0)
    assert bar.get_metrics(trainer, None) == {
        "train_loss": 2.0,
        "val_loss": 1.5,
        "val_ppl": 4.5,
        "tokens_per_sec": "15,064",
    }


def test_best_is_the_lowest_loss_and_the_highest_accuracy():
    history = {"val_loss": [(2, 3.0), (4, 2.0), (5, 2.5)], "val_acc": [(2, 0.5), (4, 0.7), (5, 0.6)]}
    rows = dict(console._metric_rows({"val_loss": 2.5, "val_acc": 0.6, "train_loss": 1.0}, history))
    assert rows == {"val_loss": "2.5   (best 2 at step 4)", "val_acc": "0.6   (best 0.7 at step 4)", "train_loss": "1"}


class Generates(L.LightningModule):
    def generate(self, ids):
        return ids


class Samples(L.LightningModule):
    generator = None

    def sample(self, n):
        return n


def test_the_next_command_fits_the_model():
    text = SimpleNamespace(tokenizer=Char())
    assert console.next_command(Generates(), text, ["gpt2-tiny"], "runs/x/last.ckpt").startswith(
        "radford generate --checkpoint runs/x/last.ckpt --prompt "
    )
    assert (
        console.next_command(Generates(), None, ["igpt"], "a.ckpt")
        == "radford validate --recipe igpt --ckpt_path a.ckpt"
    )  # generates, but no text: not radford generate's
    assert (
        console.next_command(Samples(), None, ["dcgan"], "b c.ckpt")
        == "radford sample --checkpoint 'b c.ckpt' --out samples.png"
    )


def test_ticks_are_round_and_cover_the_range():
    assert plot.ticks(3.71, 8.05) == [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    assert plot.ticks(0, 12, integer=True) == [0, 5, 10, 15]
    assert plot.ticks(0, 3, integer=True) == [0, 1, 2, 3]
    assert plot.ticks(5.0, 5.0) == [4.0, 4.5, 5.0, 5.5, 6.0]  # one value: a range around it


def test_line_chart_draws_every_series(tmp_path):
    path = plot.line_chart(
        {
            "train_loss": [(s, 8 - s / 100) for s in range(0, 600, 10)],
            "val_loss": [(200, 5.3)],
            "broken": [(0, float("nan"))],
        },
        tmp_path / "loss.png",
        "gpt2-tiny",
        "step",
    )
    image = Image.open(path).convert("RGB")
    assert image.size == plot.SIZE
    assert {plot.COLOURS[0], plot.COLOURS[1]} <= set(image.getdata())
    assert [p.name for p in tmp_path.iterdir()] == ["loss.png"]  # written whole, no temporary file left
