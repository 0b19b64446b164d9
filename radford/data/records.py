"""Labelled or unlabelled records from CSV and JSON-lines files, plain or compressed, with errors that name the line.

One reader for every data module that takes records (fine-tuning tasks, byte streams, probes, LAMBADA passages); a
file may be named as a dataset (``sst2/train``, ``rotten-tomatoes``: ``radford.data.datasets``).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from radford.data import datasets
from radford.errors import RadfordError

COMPRESSED = {".bz2": bz2.open, ".gz": gzip.open}
RECORD_FORMATS = (".csv", ".jsonl", ".json")


def open_text(path: Path) -> TextIO:
    """A UTF-8 text stream of ``path``, decompressed by its suffix (``.bz2``, ``.gz``)."""
    opener = COMPRESSED.get(path.suffix, open)
    return opener(path, "rt", encoding="utf-8", newline="")


def file_format(path: Path) -> str:
    """The suffix that says how to read a file, under a compression suffix."""
    return Path(path.stem).suffix if path.suffix in COMPRESSED else path.suffix


def _csv_records(file: TextIO, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(file)
    try:
        for record in reader:
            if None in record:  # csv files surplus fields under the key None
                names = reader.fieldnames or []
                raise RadfordError(
                    f"{path} line {reader.line_num}: more fields than the header's {len(names)} ({', '.join(names)})"
                )
            yield f"{path} line {reader.line_num}", record
    except csv.Error as error:
        raise RadfordError(f"{path} line {reader.line_num}: not CSV: {error}") from error


def json_records(file: TextIO, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) for each JSON object line of ``file`` (read from ``path``); blank lines are skipped."""
    for number, line in enumerate(file, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise RadfordError(f"{path} line {number}: not JSON: {error.msg}") from error
        if not isinstance(record, dict):
            raise RadfordError(f"{path} line {number}: expected a JSON object, got {type(record).__name__}")
        yield f"{path} line {number}", record


def read_records(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) for every record of a CSV or JSONL file (or dataset name), plain or compressed; ``where``
    names the line."""
    path = datasets.resolve(path)
    if not path.is_file():
        raise RadfordError(f"data file {str(path)!r} not found: give a .csv or .jsonl file or {datasets.NAMES}")
    kind = file_format(path)
    if kind not in RECORD_FORMATS:
        raise RadfordError(f"{path} has an unknown format; valid: {', '.join(RECORD_FORMATS)} (optionally .bz2/.gz)")
    try:
        with open_text(path) as file:
            yield from (_csv_records if kind == ".csv" else json_records)(file, path)
    except UnicodeDecodeError as error:
        raise RadfordError(f"{path} is not UTF-8 text (bad byte at offset {error.start}); convert it") from error
    except (OSError, EOFError) as error:
        raise RadfordError(f"cannot read {path}: {error}") from error


def field(where: str, record: dict[str, Any], name: str) -> Any:
    """A record's field, or a one-line error naming the fields it has."""
    if name not in record:
        raise RadfordError(f"{where}: no field {name!r}; fields present: {', '.join(map(str, record)) or '(none)'}")
    return record[name]
