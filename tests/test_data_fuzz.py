"""Bad data, tried systematically: random bytes where a corpus, a task file or an image should be.

Each reader either accepts what it is given or raises one ``RadfordError`` line naming the file; never another
exception from deep inside. (Corrupt WebDataset members are reported and skipped: ``tests/test_shards.py``.)
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, find, given, settings
from hypothesis import strategies as st
from PIL import Image

from radford.data.pixels import open_image
from radford.data.tasks import TaskData
from radford.data.text import TextData
from radford.errors import RadfordError
from radford.tokenizers import Char

EXAMPLES = 40
fuzz = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


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
corpus_bytes = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    st.tuples(st.text(max_size=200), st.binary(max_size=5)).map(lambda t: t[0].encode() + t[1]),
)


@fuzz
@given(content=corpus_bytes)
def test_a_corpus_of_any_bytes(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "corpus.txt"
        path.write_bytes(content)
        data = TextData(
            sources=[str(path)], tokenizer=Char(), block_size=4, batch_size=2, cache_dir=str(Path(folder) / "cache")
        )
        accepted_or_one_line(data.prepare_data, "corpus.txt")


LABELS = ["good", "bad"]
# Cells and values near the real thing: the labels, another label, an index, text with quotes, commas, NULs and
# accents, nothing. Headers and keys usually right, so that most files get past the header to their records.
cells = st.sampled_from(["good", "bad", "ugly", "0", "", "a text", '"', "x,y", "\x00", "é", " good"])
csv_files = st.tuples(
    st.sampled_from(["text,label", "text,label", "label,text", "text", "text,label,other"]),
    st.lists(st.lists(cells, min_size=1, max_size=3).map(",".join), max_size=5),
).map(lambda header_rows: "\n".join([header_rows[0], *header_rows[1]]).encode())
json_values = st.one_of(
    st.sampled_from(["good", "bad", "ugly", "a text", "", "é\x00"]),
    st.integers(-2, 2),
    st.none(),
    st.lists(st.text(max_size=3), max_size=2),
)
json_files = st.lists(
    st.fixed_dictionaries({"text": json_values, "label": json_values}, optional={"other": json_values}).map(json.dumps)
    | st.sampled_from(["", "[]", "{", '"text"', "{}"]),
    max_size=5,
).map(lambda lines: "\n".join(lines).encode())
task_files = st.one_of(
    st.tuples(st.just(".csv"), csv_files | st.binary(max_size=200)),
    st.tuples(st.just(".jsonl"), json_files | st.binary(max_size=200)),
)


def read_task_file(path: Path) -> list[dict]:
    """TaskData's whole reading of a training file: records and their fields checked, the tokenizer trained on the
    texts, every example encoded and its label parsed, batches collated. The records read, if it accepts the file."""
    data = TaskData(tokenizer=Char(), train=str(path), labels=LABELS, max_length=16, batch_size=2)
    batches = list(data.train_dataloader())
    records = data.records("train")
    assert records and sum(len(batch["labels"]) for batch in batches) == len(records)
    assert all(isinstance(r["text"], str) and r["label"] in LABELS for r in records), records
    return records


@fuzz
@given(file=task_files)
@example(file=(".csv", b"text,label\n,good"))  # records whose texts are all empty: nothing to train a tokenizer on
def test_a_task_file_of_any_bytes(file):
    suffix, content = file
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"train{suffix}"
        path.write_bytes(content)
        accepted_or_one_line(lambda: read_task_file(path), path.name)


def test_the_task_fuzz_reaches_records_and_labels(tmp_path):
    """The strategy makes files TaskData reads to the end, and files it refuses only at a record's label: the
    fuzz gets past the header into the records (an unreadable file alone would never test them)."""

    def outcome(file: tuple[str, bytes]) -> str:
        path = tmp_path / f"train{file[0]}"
        path.write_bytes(file[1])
        try:
            read_task_file(path)
        except RadfordError as error:
            return "bad label" if ": label " in str(error) else "refused"
        return "read"

    search = settings(database=None, derandomize=True, max_examples=500)
    for wanted in ("read", "bad label"):
        assert outcome(find(task_files, lambda file, wanted=wanted: outcome(file) == wanted, settings=search)) == wanted


@fuzz
@given(
    content=st.one_of(
        st.binary(max_size=200),
        st.integers(1, len(png()) - 1).map(lambda n: png()[:n]),
        st.binary(min_size=1, max_size=20).map(lambda junk: png()[:40] + junk),
    )
)
def test_image_bytes_that_do_not_decode(content):
    accepted_or_one_line(lambda: open_image(content, name="sample.png"), "sample.png")


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_an_intact_image_still_decodes(mode):
    assert open_image(png(), mode).size == (8, 8)
