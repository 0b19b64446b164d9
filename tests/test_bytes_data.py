"""Byte data: the reference preprocessing, the byte tokenizer, every file format, and truncated backpropagation's
batches (each row reads on where the same row of the previous batch stopped)."""

from __future__ import annotations

import bz2
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from radford.data.bytes import ByteData, StreamWindows
from radford.errors import RadfordError
from radford.tokenizers import from_json
from radford.tokenizers.bytes import ByteTokenizer, preprocess


def test_preprocess_is_the_reference_encoders():
    # encoder.py: html.unescape, newlines to spaces, strip, then '\n ' + text + ' ', UTF-8.
    assert preprocess("  Not bad &amp; not &quot;great&quot;\nfun. ") == b'\n Not bad & not "great" fun. '
    assert preprocess("café") == b"\n caf\xc3\xa9 "
    assert preprocess("") == b"\n  "


def test_byte_tokenizer_ids_are_utf8_bytes_and_survive_a_checkpoint():
    text = "Déjà vu, 日本 😀\n<|endoftext|>"
    tokenizer = ByteTokenizer()
    assert tokenizer.vocab_size == 256 and tokenizer.eot_id is None
    assert tokenizer.encode(text) == list(text.encode("utf-8"))
    assert tokenizer.decode(list(range(256))).encode("utf-8", "replace")[:128] == bytes(range(128))
    restored = from_json(tokenizer.to_json())  # as radford.load rebuilds it from a checkpoint's record
    assert restored.encode(text) == tokenizer.encode(text) and restored.decode(tokenizer.encode(text)) == text
    assert restored.decode(list("日".encode())[:2]) == "\ufffd"  # an unfinished character, as generate expects


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, Path]:
    records = [{"text": "Loved it.", "label": "fresh"}, {"text": "A bore &amp; a half.\nSkip.", "label": "rotten"}]
    files = {
        "txt": tmp_path / "reviews.txt",
        "csv": tmp_path / "reviews.csv",
        "jsonl": tmp_path / "reviews.jsonl",
        "bz2": tmp_path / "reviews.jsonl.bz2",
    }
    files["txt"].write_text("Loved it.\n\nA bore &amp; a half. Skip.\n", encoding="utf-8")
    files["csv"].write_text('text,label\nLoved it.,fresh\n"A bore &amp; a half.\nSkip.",rotten\n', encoding="utf-8")
    lines = "".join(json.dumps(r) + "\n" for r in records)
    files["jsonl"].write_text(lines, encoding="utf-8")
    files["bz2"].write_bytes(bz2.compress(lines.encode()))
    return files


@pytest.mark.parametrize("kind", ["txt", "csv", "jsonl", "bz2"])
def test_every_format_gives_the_preprocessed_documents(sources, kind):
    data = ByteData(str(sources[kind]), block_size=4, batch_size=2)
    expected = preprocess("Loved it.") + preprocess("A bore & a half. Skip.")
    assert data.stream().tobytes() == expected
    assert data.vocab_size == 256


def test_windows_continue_each_stream():
    data = np.arange(2 * 3 * 10 + 5, dtype=np.uint8)  # 65 bytes: 2 ranks x 3 streams of 10, and some left over
    for rank in range(2):
        windows = StreamWindows(data, block_size=4, batch_size=3, rank=rank, world_size=2)
        batches = list(windows)
        assert len(batches) == len(windows) == 2  # 10 // 4 windows a stream; the rest is not read
        inputs = torch.cat([x for x, _ in batches], 1)
        targets = torch.cat([y for _, y in batches], 1)
        starts = [10 * (3 * rank + row) for row in range(3)]
        assert inputs.tolist() == [list(range(s, s + 8)) for s in starts]
        assert targets.tolist() == [list(range(s + 1, s + 9)) for s in starts]


def test_held_out_tail(sources, tmp_path):
    text = tmp_path / "long.txt"
    text.write_text("".join(f"review number {i} is here\n" for i in range(200)), encoding="utf-8")
    data = ByteData(str(text), block_size=8, batch_size=4, val_fraction=0.25)
    stream = data.stream()
    cut = int(len(stream) * 0.75)
    x, y = next(iter(data.val_dataloader()))
    assert x.shape == (4, 8) and bytes(x[0].tolist()) == stream[cut : cut + 8].tobytes()
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert len(data.train_dataloader()) == (cut - 1) // 4 // 8


@pytest.mark.parametrize(
    ("kind", "kwargs", "expected"),
    [
        ("csv", {"text_field": "review"}, ["line 2", "'review'", "text, label"]),
        ("jsonl", {"text_field": "label", "batch_size": 64}, ["train split", "too few", "batch_size"]),
        ("missing", {}, ["'missing'", "not found"]),
    ],
    ids=["no-field", "too-short", "no-file"],
)
def test_mistakes_are_one_line(sources, kind, kwargs, expected):
    data = ByteData(str(sources.get(kind, kind)), **kwargs)
    with pytest.raises(RadfordError) as error:
        data.train_dataloader()
    message = str(error.value)
    assert "\n" not in message and all(fragment in message for fragment in expected), message


def test_bad_settings_are_refused():
    with pytest.raises(RadfordError, match="val_fraction"):
        ByteData("x.txt", val_fraction=1.0)
    with pytest.raises(RadfordError, match="block_size"):
        ByteData("x.txt", block_size=0)
