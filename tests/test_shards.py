"""WebDataset shards: written from a folder or a CSV and read back, brace expansion, resampling, a corrupt sample
reported in one line and skipped; PairData training from shards and from a CSV."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from radford.data.pairs import PairData
from radford.data.shapes import Shapes, write_folder
from radford.data.shards import (
    pairs_from_csv,
    pairs_from_folder,
    read_shards,
    shard_urls,
    write_pair_shards,
    write_shards,
)
from radford.errors import RadfordError
from radford.tokenizers.clip import CLIPTokenizer


def numbers(count: int) -> list[dict]:
    return [{"__key__": f"{i:04d}", "txt": f"caption {i}", "cls": str(i)} for i in range(count)]


def caption(sample: dict) -> str:
    return sample["txt"].decode("utf-8")


@pytest.fixture(scope="module")
def shapes_csv(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("shapes"), Shapes("train", 40, image_size=32))


def test_write_and_read_back(tmp_path):
    written = write_shards(numbers(25), str(tmp_path / "part-%03d.tar"), maxcount=10)
    assert [Path(p).name for p in written] == ["part-000.tar", "part-001.tar", "part-002.tar"]
    pattern = str(tmp_path / "part-{000..002}.tar")
    assert shard_urls(pattern) == written
    assert list(read_shards(pattern, caption)) == [f"caption {i}" for i in range(25)]
    shuffled = list(read_shards(pattern, caption, shuffle=100, seed=1))
    assert sorted(shuffled) == sorted(f"caption {i}" for i in range(25)) and shuffled != sorted(shuffled)
    assert list(read_shards(pattern, caption, shuffle=100, seed=1)) == shuffled  # seeded
    batches = list(read_shards(pattern, caption, batch_size=10, collate=len, partial=False))
    assert batches == [10, 10]


def test_resampling_is_endless_and_epochs_are_bounded(tmp_path):
    write_shards(numbers(6), str(tmp_path / "part-%03d.tar"), maxcount=3)
    stream = read_shards(
        str(tmp_path / "part-{000..001}.tar"), caption, resample=True, batch_size=4, collate=list, batches_per_epoch=5
    )
    batches = list(stream)
    assert len(batches) == 5 and all(len(b) == 4 for b in batches)  # 20 samples drawn from 6


def test_corrupt_sample_is_reported_in_one_line_and_skipped(tmp_path, caplog):
    from radford.data.pairs import DecodeSample, Preprocess

    good = io.BytesIO()
    Shapes("train", 1, image_size=32).image(0).save(good, format="PNG")
    samples = [
        {"__key__": "good", "png": good.getvalue(), "txt": "a shape"},
        {"__key__": "broken", "png": b"not an image", "txt": "oops"},
        {"__key__": "nocaption", "png": good.getvalue()},
        {"__key__": "alsogood", "png": good.getvalue(), "txt": "another shape"},
    ]
    [shard] = write_shards(samples, str(tmp_path / "mixed-%03d.tar"))
    with caplog.at_level(logging.WARNING, logger="radford.data.shards"):
        decoded = list(read_shards(shard, DecodeSample(Preprocess(32))))
    assert [text for _, text in decoded] == ["a shape", "another shape"]
    assert decoded[0][0].shape == (3, 32, 32)
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2 and all("\n" not in w and shard in w for w in warnings)
    assert "'broken'" in warnings[0] and "cannot decode image" in warnings[0]
    assert "'nocaption'" in warnings[1] and "txt" in warnings[1]


def test_truncated_shard_is_reported_and_the_rest_read(tmp_path, caplog):
    first, second = write_shards(numbers(20), str(tmp_path / "part-%03d.tar"), maxcount=10)
    Path(first).write_bytes(Path(first).read_bytes()[:3000])  # cut inside the shard's samples
    with caplog.at_level(logging.WARNING, logger="radford.data.shards"):
        texts = list(read_shards([first, second], caption))
    assert texts[-10:] == [f"caption {i}" for i in range(10, 20)]
    assert any(first in record.getMessage() for record in caplog.records)


def test_missing_shards_and_bad_patterns(tmp_path):
    write_shards(numbers(2), str(tmp_path / "part-%03d.tar"))
    with pytest.raises(RadfordError, match=r"shard .*part-001.tar not found \(and 1 more\)"):
        shard_urls(str(tmp_path / "part-{000..002}.tar"))
    with pytest.raises(RadfordError, match="needs a %-format"):
        write_shards(numbers(2), str(tmp_path / "out.tar"))


def test_shards_command(shapes_csv, tmp_path, capsys):
    from radford.commands.shards import main

    main([str(shapes_csv), str(tmp_path / "cmd-%03d.tar"), "--maxcount", "30"])
    assert capsys.readouterr().out.startswith("wrote 2 shards")
    assert len(list(read_shards(str(tmp_path / "cmd-{000..001}.tar"), caption))) == 40
    with pytest.raises(RadfordError, match="maxcount must be at least 1"):
        main([str(shapes_csv), str(tmp_path / "cmd-%03d.tar"), "--maxcount", "0"])


def test_shards_from_csv_and_folder(shapes_csv, tmp_path):
    written = write_pair_shards(shapes_csv, str(tmp_path / "csv-%03d.tar"), maxcount=16)
    assert len(written) == 3
    texts = list(read_shards(written, caption))
    assert texts == [Shapes("train", 40, image_size=32).sample(i).caption for i in range(40)]
    # A folder of images with .txt captions beside them.
    folder = tmp_path / "folder"
    folder.mkdir()
    val = Shapes("val", 3, image_size=32)
    for i in range(3):
        image, text = val[i]
        image.save(folder / f"img.{i}.png")  # a dot in the name: WebDataset keys cannot hold one
        (folder / f"img.{i}.txt").write_text(text)
    assert len(pairs_from_folder(folder)) == 3
    [shard] = write_pair_shards(folder, str(tmp_path / "dir-%03d.tar"))
    assert len(list(read_shards(shard, caption))) == 3
    (folder / "img.0.txt").unlink()
    with pytest.raises(RadfordError, match="1 images of .* have no caption"):
        write_pair_shards(folder, str(tmp_path / "dir-%03d.tar"))


@pytest.mark.parametrize("source", ["csv", "shards"])
def test_pair_data_serves_tokenized_batches(source, shapes_csv, tmp_path):
    train = str(shapes_csv)
    if source == "shards":
        write_pair_shards(shapes_csv, str(tmp_path / "train-%03d.tar"), maxcount=16)
        train = str(tmp_path / "train-{000..002}.tar")
    data = PairData(
        train=train,
        val=train,
        tokenizer=CLIPTokenizer(vocab_size=530),
        image_size=32,
        context_length=16,
        batch_size=8,
        shuffle_buffer=16,
        samples_per_epoch=32,
    )
    assert data.vocab_size == data.tokenizer.vocab_size  # learned from the captions
    data.setup("fit")
    pixels, ids = next(iter(data.train_dataloader()))
    assert pixels.shape == (8, 3, 32, 32) and ids.shape == (8, 16) and ids.dtype == torch.long
    assert (ids[:, 0] == data.tokenizer._trained().token_to_id("<|startoftext|>")).all()
    assert sum(len(batch[0]) for batch in data.val_dataloader()) == 40  # every sample once, the last batch kept


def test_pair_data_mistakes(tmp_path):
    with pytest.raises(RadfordError, match="needs CLIP's tokenizer"):
        from radford.tokenizers import BPE

        PairData(tokenizer=BPE())
    with pytest.raises(RadfordError, match="CSV .* not found"):
        _ = PairData(train=str(tmp_path / "missing.csv")).vocab_size
    (tmp_path / "bad.csv").write_text("path,text\nx.png,hello\n")
    with pytest.raises(RadfordError, match="needs the columns filepath,caption"):
        _ = PairData(train=str(tmp_path / "bad.csv")).vocab_size
    with pytest.raises(RadfordError, match="not found"):
        _ = PairData(train=str(tmp_path / "none-{000..001}.tar")).vocab_size


def test_a_write_that_fails_part_way_keeps_no_shard(tmp_path):
    """Two shards were closed and a third begun when the source fails: none is kept, the error goes on."""

    def failing() -> Iterator[dict]:
        yield from numbers(5)
        raise RadfordError("the source failed")

    with pytest.raises(RadfordError, match="the source failed"):
        write_shards(failing(), str(tmp_path / "part-%03d.tar"), maxcount=2)
    assert list(tmp_path.iterdir()) == []


def test_a_csv_of_pairs_with_a_byte_order_mark_reads_its_header(tmp_path):
    """A spreadsheet's CSV export starts with a byte-order mark; the header's first column is still ``filepath``."""
    (tmp_path / "pairs.csv").write_bytes("filepath,caption\na.png,a caf\u00e9\n".encode("utf-8-sig"))
    assert pairs_from_csv(tmp_path / "pairs.csv") == [(tmp_path / "a.png", "a caf\u00e9")]


@pytest.mark.parametrize("resample", [True, False], ids=["resampled", "once"])
def test_a_stream_in_which_nothing_decodes_stops_in_one_line(tmp_path, resample):
    """Captions stored under another extension (``.caption``): no sample has ``txt``. An endless resampled stream
    used to skip every sample for ever; it stops, naming the shards and the files the samples hold."""
    write_shards(
        [{"__key__": f"{i:04d}", "caption": "a shape", "png": b"x"} for i in range(6)],
        str(tmp_path / "part-%03d.tar"),
        maxcount=3,
    )
    stream = read_shards(str(tmp_path / "part-{000..001}.tar"), caption, resample=resample, batch_size=2, collate=list)
    with pytest.raises(
        RadfordError,
        match=r"no sample of .*part-000.tar and 1 more decodes: the samples hold "
        r"caption, png",
    ):
        next(iter(stream))


def test_a_corrupt_shard_that_yields_nothing_stops_a_resampled_stream(tmp_path):
    (tmp_path / "bad.tar").write_bytes(b"not a tar file" * 100)
    stream = read_shards(str(tmp_path / "bad.tar"), caption, resample=True)
    with pytest.raises(RadfordError, match="no sample of .*bad.tar decodes: the samples hold no readable samples"):
        next(iter(stream))
