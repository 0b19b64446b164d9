"""Faults in the data and on the disk, and what each keeps.

- An image that does not decode in a folder (DCGAN's ``images``) or a CSV of pairs (CLIP's ``pairs``) is skipped with
  a counted warning, a neighbour served in its place so that batches stay full; a run stops in one line only when
  most of the images tried fail (``radford.data.pixels.DecodeFailures``).
- A write the system refuses (a read-only folder, a full disk) is one line naming the file and the reason; the file
  it would have replaced is kept, and no temporary file is left (``radford.io``).
- ``radford convert`` never replaces what its destination holds unless told to (``--overwrite``).
"""

from __future__ import annotations

import csv
import errno
import io
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch._utils import ExceptionWrapper

from radford.checkpoints import Weights, load, write_checkpoint
from radford.cli import main
from radford.data.images import ImageData
from radford.data.pairs import PairData
from radford.data.pixels import JUDGED_AFTER, DecodeFailures, UndecodableImage
from radford.errors import RadfordError
from radford.io import write_atomically
from radford.models.dcgan import DCGAN
from radford.models.gpt import GPT
from radford.tokenizers import Char
from radford.tokenizers.clip import CLIPTokenizer
from tests.helpers import error_line

SIDE = 16  # the pictures' side: DCGAN and CLIP read them at 32


def picture(shade: int) -> bytes:
    """A grey PNG of one shade: which image a batch served is told by its mean."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((SIDE, SIDE), shade, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def folder_of(tmp_path: Path, good: int, junk: int) -> Path:
    """``good`` real pictures (shades 100, 110, ...) and ``junk`` files named .png that are not images."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(good):
        (folder / f"good-{i:02d}.png").write_bytes(picture(100 + 10 * i))
    for i in range(junk):
        (folder / f"junk-{i:02d}.png").write_bytes(b"not a png")
    return folder


def served(data) -> list[torch.Tensor]:
    data.setup("fit")
    return list(data.train_dataloader())


# -- undecodable images ------------------------------------------------------------------------------------------


def test_an_undecodable_image_in_a_folder_is_skipped_with_a_counted_warning(tmp_path, caplog):
    folder = folder_of(tmp_path, good=7, junk=1)
    with caplog.at_level(logging.WARNING, logger="radford.data.pixels"):
        batches = served(ImageData(str(folder), image_size=32, channels=1, batch_size=4))
    assert [len(batch) for batch in batches] == [4, 4]  # full batches: a neighbour stood in for the junk
    shades = {round(float((batch_image.mean() + 1) * 127.5)) for batch in batches for batch_image in batch}
    assert shades <= {100 + 10 * i for i in range(7)}  # only real pictures were served
    [warning] = caplog.records
    assert "junk-00.png" in warning.getMessage() and "(1 of " in warning.getMessage()


def test_most_images_of_a_folder_failing_stops_in_one_line(tmp_path, caplog):
    folder = folder_of(tmp_path, good=1, junk=3)
    with pytest.raises(RadfordError) as error, caplog.at_level(logging.WARNING, logger="radford.data.pixels"):
        served(ImageData(str(folder), image_size=32, channels=1, batch_size=1))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"most images of {folder} do not decode: ") and "cannot decode image" in message
    assert len(caplog.records) < 4  # a warning for each skipped before the run was judged, none after


def test_a_missing_file_counts_as_undecodable(tmp_path, caplog):
    folder = folder_of(tmp_path, good=3, junk=0)
    data = ImageData(str(folder), image_size=32, channels=1, batch_size=3)
    data.setup("fit")
    (folder / "good-01.png").unlink()  # gone after the folder was listed: a network drive, a cleanup job
    with caplog.at_level(logging.WARNING, logger="radford.data.pixels"):
        [batch] = list(data.train_dataloader())
    assert len(batch) == 3 and "good-01.png not found" in caplog.text


def pairs_csv(tmp_path: Path, good: int, bad: list[str]) -> Path:
    """A ``filepath,caption`` CSV of ``good`` pictures, then ``bad`` rows: junk files, or names of no file."""
    rows = []
    for i in range(good):
        (tmp_path / f"good-{i}.png").write_bytes(picture(100 + 10 * i))
        rows.append((f"good-{i}.png", f"a grey square of shade {100 + 10 * i}"))
    for name in bad:
        if name.startswith("junk"):
            (tmp_path / name).write_bytes(b"not a png")
        rows.append((name, "a picture that is not there"))
    path = tmp_path / "pairs.csv"
    with open(path, "w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows([("filepath", "caption"), *rows])
    return path


def pair_data(path: Path, batch_size: int) -> PairData:
    return PairData(
        train=str(path),
        val=None,
        tokenizer=CLIPTokenizer(vocab_size=530),
        image_size=32,
        context_length=12,
        batch_size=batch_size,
        augment=False,
    )


def test_an_undecodable_or_missing_image_in_a_csv_of_pairs_is_skipped(tmp_path, caplog):
    path = pairs_csv(tmp_path, good=6, bad=["junk.png", "absent.png"])
    with caplog.at_level(logging.WARNING, logger="radford.data.pixels"):
        batches = served(pair_data(path, batch_size=4))
    assert [len(pixels) for pixels, _ in batches] == [4, 4]
    assert "junk.png" in caplog.text and "absent.png not found" in caplog.text
    assert all("junk.png" in r.getMessage() or "absent.png" in r.getMessage() for r in caplog.records)


def test_most_pairs_failing_stops_in_one_line(tmp_path):
    path = pairs_csv(tmp_path, good=1, bad=["junk.png", "absent-1.png", "absent-2.png"])
    with pytest.raises(RadfordError, match=rf"^most images of {path} do not decode: \d+ of the \d+ tried, e\.g\. "):
        served(pair_data(path, batch_size=2))


class Images:
    """A stand-in dataset: which indices decode."""

    def __init__(self, good: set[int]) -> None:
        self.good = good

    def __call__(self, index: int) -> int:
        if index not in self.good:
            raise UndecodableImage(f"cannot decode image {index}.png")
        return index


def test_the_judgement_waits_for_its_sample_and_needs_a_majority(caplog):
    """Failures in the first tries stop nothing until JUDGED_AFTER images were tried; then more than half failing
    stops, exactly half does not."""
    count = 10 * JUDGED_AFTER
    failures = DecodeFailures("source", count)
    with caplog.at_level(logging.WARNING, logger="radford.data.pixels"):
        for _ in range(JUDGED_AFTER - 1):
            assert failures.attempt(lambda: Images(set())(0)) is None
        assert failures.attempt(lambda: 1) == 1  # JUDGED_AFTER tries, JUDGED_AFTER - 1 failed: judged from now on
        with pytest.raises(
            RadfordError,
            match=rf"most images of source do not decode: {JUDGED_AFTER} of the "
            rf"{JUDGED_AFTER + 1} tried",
        ):
            failures.attempt(lambda: Images(set())(0))
    half = DecodeFailures("source", count)
    for good in [True, False] * JUDGED_AFTER:
        half.attempt(lambda good=good: 1 if good else Images(set())(0))
    assert (half.tried, half.failed) == (2 * JUDGED_AFTER, JUDGED_AFTER)


def test_a_neighbour_stands_in_and_a_source_that_stopped_decoding_says_so():
    failures = DecodeFailures("source", 6)
    assert failures.first(2, Images({0, 4, 5})) == 4  # 2 and 3 fail: the next that decodes
    assert failures.first(5, Images({0, 4, 5})) == 5
    assert failures.first(5, Images({0})) == 0  # around the end
    everything_went = DecodeFailures("source", 3)
    everything_went.tried = 1000  # long past judging, all good so far
    with pytest.raises(RadfordError, match="no image of source decodes any more"):
        everything_went.first(0, Images(set()))


def test_most_images_failing_in_a_loader_worker_is_still_one_line(tmp_path):
    folder = folder_of(tmp_path, good=0, junk=2)
    with pytest.raises(RadfordError) as error:
        served(ImageData(str(folder), image_size=32, channels=1, batch_size=1, num_workers=1))
    assert "\n" not in str(error.value) and str(error.value).startswith("most images of")


def test_an_error_torch_reraises_from_a_worker_keeps_its_own_line():
    """torch rebuilds a worker's exception from its traceback's text (``ExceptionWrapper``): a subclass, raised from
    another error, keeps its message alone; a message that only looks like torch's is left as it is."""
    try:
        try:
            raise ValueError("the cause: RadfordError: not this")
        except ValueError as cause:
            raise UndecodableImage("cannot decode image a.png: not a PNG") from cause
    except UndecodableImage:
        wrapper = ExceptionWrapper(where="in DataLoader worker process 3")
    with pytest.raises(UndecodableImage) as error:
        wrapper.reraise()
    assert str(error.value) == "cannot decode image a.png: not a PNG"
    assert str(RadfordError("Caught RadfordError in a trap")) == "Caught RadfordError in a trap"


def test_a_training_run_skips_the_bad_image_and_stops_on_a_bad_folder(tmp_path, monkeypatch, capsys, caplog):
    """Through ``radford fit``: one junk file among 8 pictures trains an epoch (two full batches, every index
    served); a folder of junk is one line, exit 2."""
    (tmp_path / "mostly-good").mkdir()
    (tmp_path / "all-junk").mkdir()
    mostly_good, all_junk = folder_of(tmp_path / "mostly-good", 7, 1), folder_of(tmp_path / "all-junk", 0, 5)
    monkeypatch.chdir(tmp_path)
    run = (
        "fit",
        "--recipe",
        "dcgan-digits",
        "--model.init_args.width",
        "8",
        "--model.init_args.grid_size",
        "0",
        "--data.init_args.batch_size",
        "4",
        "--trainer.max_epochs",
        "1",
        "--trainer.logger",
        "false",
        "--trainer.enable_checkpointing",
        "false",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
    )
    with caplog.at_level(logging.WARNING, logger="radford.data.pixels"):
        main([*run, "--data.init_args.source", str(mostly_good)])
    assert "junk-00.png" in caplog.text
    line = error_line(capsys, *run, "--data.init_args.source", str(all_junk))
    assert "most images of" in line and "do not decode" in line


# -- writes the system refuses -----------------------------------------------------------------------------------


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    path.write_text("the previous checkpoint")

    def write(tmp: Path) -> None:
        tmp.write_text("half of a new")
        no_space()

    with pytest.raises(RadfordError) as error:
        write_atomically(path, write)
    assert str(error.value) == f"cannot write {path}: No space left on device"
    assert path.read_text() == "the previous checkpoint" and sorted(tmp_path.iterdir()) == [path]


@pytest.mark.skipif(os.access("/sys", os.W_OK) and os.geteuid() != 0, reason="needs an unwritable folder")
def test_a_read_only_folder_is_one_line_naming_the_file():
    with pytest.raises(RadfordError, match=r"^cannot write /sys/radford/last.ckpt: .+ \(/sys/radford\)$"):
        write_atomically(Path("/sys/radford/last.ckpt"), lambda tmp: tmp.write_text("x"))


@pytest.fixture(scope="module")
def gpt_checkpoint(tmp_path_factory) -> Path:
    tokenizer = Char()
    tokenizer.train(["abcdefgh\n"])
    torch.manual_seed(0)
    model = GPT(vocab_size=tokenizer.vocab_size, block_size=8, n_layer=1, n_head=1, n_embd=8)
    path = tmp_path_factory.mktemp("gpt") / "last.ckpt"
    write_checkpoint(Weights(GPT, dict(model.hparams), model.state_dict(), tokenizer), path)
    return path


@pytest.fixture(scope="module")
def dcgan_checkpoint(tmp_path_factory) -> Path:
    model = DCGAN(image_size=32, channels=1, width=8, grid_size=0)
    path = tmp_path_factory.mktemp("dcgan") / "last.ckpt"
    write_checkpoint(Weights(DCGAN, dict(model.hparams), model.state_dict(), None), path)
    return path


def test_commands_on_a_full_disk_are_one_line_and_write_nothing(
    tmp_path, monkeypatch, capsys, gpt_checkpoint, dcgan_checkpoint
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "replace", no_space)  # every atomic write fails at its last step, as on a full disk
    line = error_line(capsys, "sample", "--checkpoint", str(dcgan_checkpoint), "--out", "grid.png")
    assert line == "radford: error: cannot write grid.png: No space left on device"
    line = error_line(capsys, "convert", str(gpt_checkpoint), "hf")
    assert line.startswith("radford: error: cannot write hf") and line.endswith("No space left on device")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


# -- convert keeps what is there -----------------------------------------------------------------------------------


def test_convert_never_replaces_a_checkpoint_unless_told(tmp_path, capsys, gpt_checkpoint):
    hf = tmp_path / "hf"
    main(["convert", str(gpt_checkpoint), str(hf)])
    resumable = tmp_path / "last.ckpt"
    resumable.write_bytes(b"a run's only copy")
    line = error_line(capsys, "convert", str(hf), str(resumable))
    assert line == (
        f"radford: error: {resumable} exists (a file): radford convert does not replace it; give "
        "another destination, or --overwrite to replace it"
    )
    assert resumable.read_bytes() == b"a run's only copy"
    assert "a folder with files in it" in error_line(capsys, "convert", str(gpt_checkpoint), str(hf))
    main(["convert", str(hf), str(resumable), "--overwrite"])
    torch.testing.assert_close(load(resumable).state_dict(), load(gpt_checkpoint).state_dict())
    empty = tmp_path / "empty"
    empty.mkdir()
    main(["convert", str(gpt_checkpoint), str(empty)])  # an empty folder holds nothing to lose
    assert (empty / "config.json").is_file()
