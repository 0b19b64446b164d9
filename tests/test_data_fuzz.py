"""Bad data, tried systematically: random bytes where a corpus, a task file or an image should be.

Each reader either accepts what it is given or raises one ``RadfordError`` line naming the file; never another
exception from deep inside. (Corrupt WebDataset members are reported and skipped: ``tests/test_shards.py``.)
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from radford.data.pixels import open_image
from radford.data.tasks import TaskData
from radford.data.text import TextData
from radford.errors import RadfordError
from radford.tokenizers import Char

EXAMPLES = 40
fuzz = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def accepted_or_one_line(read, name: str) -> None:
    try:
        read()
    except RadfordError as error:
        message = str(error)
        assert "\n" not in message and name in message, message


def png(size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


# Text that looks like the real thing, broken here and there: stray bytes, invalid UTF-8, NULs, empty files.
corpus_bytes = st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                         st.tuples(st.text(max_size=200), st.binary(max_size=5)).map(lambda t: t[0].encode() + t[1]))


@fuzz
@given(content=corpus_bytes)
def test_a_corpus_of_any_bytes(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "corpus.txt"
        path.write_bytes(content)
        data = TextData(sources=[str(path)], tokenizer=Char(), block_size=4, batch_size=2,
                        cache_dir=str(Path(folder) / "cache"))
        accepted_or_one_line(data.prepare_data, "corpus.txt")


def csv_text(draw_rows) -> str:
    return "\n".join(",".join(row) for row in draw_rows)


task_files = st.one_of(
    st.binary(max_size=200),
    st.lists(st.lists(st.sampled_from(["text", "label", "good", "bad", '"', "", "x,y", "\x00", "é"]), max_size=3),
             max_size=5).map(lambda rows: "\n".join(",".join(r) for r in rows).encode()),
    st.lists(st.dictionaries(st.sampled_from(["text", "label", "other"]),
                             st.one_of(st.text(max_size=5), st.integers(), st.none()), max_size=3), max_size=4)
    .map(lambda records: "\n".join(__import__("json").dumps(r) for r in records).encode()),
)


@fuzz
@given(content=task_files, suffix=st.sampled_from([".csv", ".jsonl"]))
def test_a_task_file_of_any_bytes(content, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"train{suffix}"
        path.write_bytes(content)
        data = TaskData(tokenizer=Char(), train=str(path), labels=["good", "bad"], max_length=16, batch_size=2)

        def read() -> None:
            data.records("train")
            data.setup("fit")

        accepted_or_one_line(read, f"train{suffix}")


@fuzz
@given(content=st.one_of(st.binary(max_size=200), st.integers(1, len(png()) - 1).map(lambda n: png()[:n]),
                         st.binary(min_size=1, max_size=20).map(lambda junk: png()[:40] + junk)))
def test_image_bytes_that_do_not_decode(content):
    accepted_or_one_line(lambda: open_image(content, name="sample.png"), "sample.png")


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_an_intact_image_still_decodes(mode):
    assert open_image(png(), mode).size == (8, 8)
