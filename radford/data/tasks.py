"""Labelled task data for fine-tuning (Radford et al. 2018, "Improving Language Understanding by Generative
Pre-Training", section 3.3): JSONL or CSV files turned into the token sequences of the paper's figure 1.

Every example becomes one or more sequences ``[start] ... [extract]`` whose special tokens take the ids just
past the tokenizer's vocabulary (``vocab_size``, ``+1``, ``+2``); the model grows its embedding by those three
rows. A batch is ``input_ids`` (examples, sequences per example, time), right-padded, with ``lengths``
(examples, sequences) so the model finds each extract token, and ``labels`` where the split has them.

Fields per task (CSV holds ``choices`` as a JSON list in one column):

    classification    text, label                [start] text [extract]
    entailment        premise, hypothesis, label [start] premise [delim] hypothesis [extract]
    similarity        text_a, text_b, label      both orders of [start] a [delim] b [extract]
    multiple_choice   context, choices, label    [start] context [delim] choice_i [extract], one per choice

Instead of a file, a split may name ``stdlib-docstrings``: a classification task every machine has, the
docstrings of the public functions and classes of four standard-library packages labelled with their
package, split 80/10/10 by a hash of each name.
"""

from __future__ import annotations

import ast
import json
import os
import re
import zlib
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from radford.data.datasets import DATASETS, NAMES
from radford.data.records import read_records
from radford.data.tokenizer_state import TokenizerState
from radford.errors import RadfordError
from radford.tasks import NUM_SPECIAL, Task, check_task
from radford.tokenizers import Tokenizer

FIELDS: dict[str, tuple[str, ...]] = {
    "classification": ("text",),
    "entailment": ("premise", "hypothesis"),
    "similarity": ("text_a", "text_b"),
    "multiple_choice": ("context", "choices"),
}
SPLITS = ("train", "val", "test", "predict")
# Any id works as padding: it comes after the extract token, which causal attention never lets see it,
# and the language-modelling loss skips it.
PAD_ID = 0

STDLIB_DOCSTRINGS = "stdlib-docstrings"
STDLIB_PACKAGES = ("asyncio", "email", "logging", "xml")
_SPLIT_BUCKETS = {"train": range(8), "val": range(8, 9), "test": range(9, 10), "predict": range(9, 10)}


def _fit(first: list[int], second: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Cut a pair to ``budget`` tokens in all: the first (the context) gives way first."""
    second = second[:budget]
    return first[: budget - len(second)], second


def transform(task: str, fields: list[list[int]], vocab_size: int, max_length: int) -> list[list[int]]:
    """The token sequences of one example (GPT-1 paper section 3.3, figure 1), each at most ``max_length``.

    ``fields`` are the example's encoded texts in the order of ``FIELDS`` (for multiple choice: the context,
    then every choice). Texts are cut from their end; the special tokens are always kept.
    """
    start, delim, extract = vocab_size, vocab_size + 1, vocab_size + 2
    if task == "classification":
        return [[start, *fields[0][: max_length - 2], extract]]
    if task == "similarity":
        # No natural order for two sentences: both orders, whose extract states the model adds.
        a, b = _fit(fields[0], fields[1], max_length - 3)
        return [[start, *a, delim, *b, extract], [start, *b, delim, *a, extract]]
    context, *answers = fields  # entailment: the one hypothesis; multiple choice: every choice
    return [[start, *c, delim, *s, extract] for c, s in (_fit(context, a, max_length - 3) for a in answers)]


class Example(NamedTuple):
    sequences: list[list[int]]
    label: int | float | None


def collate(examples: list[Example]) -> dict[str, Tensor]:
    """Right-pad every sequence of the batch to the longest; missing choices have length 0."""
    width = max(len(e.sequences) for e in examples)
    time = max(len(s) for e in examples for s in e.sequences)
    input_ids = torch.full((len(examples), width, time), PAD_ID, dtype=torch.long)
    lengths = torch.zeros((len(examples), width), dtype=torch.long)
    for i, example in enumerate(examples):
        for j, sequence in enumerate(example.sequences):
            input_ids[i, j, : len(sequence)] = torch.tensor(sequence)
            lengths[i, j] = len(sequence)
    batch = {"input_ids": input_ids, "lengths": lengths}
    if examples[0].label is not None:
        batch["labels"] = torch.tensor([e.label for e in examples])
    return batch


@cache
def _stdlib_docstrings() -> tuple[tuple[int, dict[str, str]], ...]:
    """(bucket 0-9, record) for every public function and class with a docstring in STDLIB_PACKAGES."""
    root = Path(os.__file__).parent
    found = []
    for package in STDLIB_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module = path.relative_to(root).with_suffix("").as_posix()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    continue
                docstring = ast.get_docstring(node)
                if node.name.startswith("_") or not docstring:
                    continue
                bucket = zlib.crc32(f"{module}.{node.name}.{node.lineno}".encode()) % 10
                found.append((bucket, {"text": re.sub(r"\s+", " ", docstring), "label": package}))
    return tuple(found)


def stdlib_docstrings(split: str) -> list[dict[str, str]]:
    """The embedded task: {text: a public function's or class's docstring, label: its package} for one split."""
    return [dict(record) for bucket, record in _stdlib_docstrings() if bucket in _SPLIT_BUCKETS[split]]


def _read(source: str, split: str) -> list[tuple[str, dict[str, Any]]]:
    """(where, record) for every record of a JSONL or CSV file, ``where`` naming the file and line."""
    if source == STDLIB_DOCSTRINGS:
        return [(f"{STDLIB_DOCSTRINGS} {split} example {i}", r) for i, r in enumerate(stdlib_docstrings(split), 1)]
    return list(read_records(source))


def _integer(value: Any) -> int | None:
    """A non-negative integer from JSON (5) or CSV ("5"); None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    return int(value) if isinstance(value, str) and value.strip().isdigit() else None


class TaskData(TokenizerState, L.LightningDataModule):
    """A labelled task from JSONL or CSV files, transformed for GPT fine-tuning (GPT-1 paper section 3.3).

    Args:
        tokenizer: the pretrained model's tokenizer (``pretrained`` or ``gpt2`` with a path), or a trainable
            one (``bpe``), which learns its vocabulary from the training texts.
        task: classification, entailment, similarity or multiple_choice (the fields each needs: module doc).
        train, val, test, predict: JSONL (``.jsonl``/``.json``) or ``.csv`` files, a dataset name (``sst2/train``,
            ``radford.data.datasets``), or ``stdlib-docstrings``; each optional until the command needs it
            (``predict`` files may leave out ``label``).
        fields: the task's field names as the files name them, where they differ: ``{text: sentence}`` for SST.
        labels: the label set, for string labels (index = position in this list); None: labels in the files
            are class indices 0..n-1, or scores for similarity. Multiple choice labels are always the index
            of the right choice.
        max_length: tokens per sequence, special tokens included (at most the model's block_size).
        batch_size: examples per batch on each device.
        num_workers: loader worker processes.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        task: Task = "classification",
        train: str | None = None,
        val: str | None = None,
        test: str | None = None,
        predict: str | None = None,
        labels: list[str] | None = None,
        fields: dict[str, str] | None = None,
        max_length: int = 512,
        batch_size: int = 32,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.task = check_task(task)
        if labels is not None and task == "multiple_choice":
            raise RadfordError("labels do not apply to multiple_choice: its label is the index of the right choice")
        if labels is not None and len(set(labels)) != len(labels):
            raise RadfordError(f"labels must be distinct, got {labels}")
        if max_length < NUM_SPECIAL + 1:
            raise RadfordError(
                f"max_length must be at least {NUM_SPECIAL + 1} (special tokens and a text token), got {max_length}"
            )
        if batch_size < 1:
            raise RadfordError(f"batch_size must be positive, got {batch_size}")
        if num_workers < 0:
            raise RadfordError(f"num_workers must be 0 (load in the main process) or more, got {num_workers}")
        self.sources = {"train": train, "val": val, "test": test, "predict": predict}
        for split, source in self.sources.items():
            if source in (None, STDLIB_DOCSTRINGS):
                continue
            file = Path(DATASETS[source].file if source in DATASETS else source)
            if source not in DATASETS and not file.expanduser().is_file():
                raise RadfordError(
                    f"{split} file {source!r} not found (give a .jsonl or .csv file, {NAMES}, or {STDLIB_DOCSTRINGS!r})"
                )
            if file.suffix not in (".jsonl", ".json", ".csv"):
                raise RadfordError(f"{split} file {source!r} has an unknown format; valid: .jsonl, .json, .csv")
        unknown = sorted(set(fields or {}) - {*FIELDS[task], "label"})
        if unknown:
            raise RadfordError(
                f"fields names {unknown[0]!r}, which task {task} does not read; its fields: "
                f"{', '.join((*FIELDS[task], 'label'))}"
            )
        self.fields = dict(fields or {})
        if STDLIB_DOCSTRINGS in self.sources.values() and task != "classification":
            raise RadfordError(f"{STDLIB_DOCSTRINGS} is a classification task, not {task}")
        self.tokenizer, self.labels = tokenizer, labels
        self.max_length, self.batch_size, self.num_workers = max_length, batch_size, num_workers
        self._records: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self._examples: dict[str, list[Example]] = {}

    @property
    def vocab_size(self) -> int:
        """The tokenizer's vocabulary, without the three special tokens; a trainable one is trained first."""
        if self.tokenizer.needs_training:
            if self.sources["train"] is None:
                raise RadfordError(
                    f"the {type(self.tokenizer).__name__} tokenizer learns from the training "
                    "texts, but no train file is given"
                )
            texts = (text for _, record in self._split_records("train") for text in self._texts(record))
            try:
                self.tokenizer.train(texts)
            except RadfordError as error:
                raise RadfordError(f"train file {self.sources['train']!r}: {error}") from error
        return self.tokenizer.vocab_size

    def records(self, split: str) -> list[dict[str, Any]]:
        """The records of a split as read from its file, in order (what ``WritePredictions`` writes beside)."""
        return [record for _, record in self._split_records(split)]

    # -- reading and checking ------------------------------------------------------------------------

    def _split_records(self, split: str) -> list[tuple[str, dict[str, Any]]]:
        if split not in self._records:
            source = self.sources[split]
            if source is None:
                raise RadfordError(f"no {split} file given: set data.init_args.{split}")
            self._records[split] = records = [(where, self._renamed(record)) for where, record in _read(source, split)]
            needed = FIELDS[self.task] + (() if split == "predict" else ("label",))
            for where, record in records:
                missing = [field for field in needed if field not in record]
                if missing:
                    raise RadfordError(
                        f"{where}: missing field {missing[0]!r} for task {self.task}; "
                        f"fields present: {', '.join(record) or '(none)'}"
                    )
                self._texts(record, where)
            if not records:
                raise RadfordError(f"{split} file {source!r} holds no examples")
        return self._records[split]

    def _renamed(self, record: dict[str, Any]) -> dict[str, Any]:
        """A record under the task's field names (``fields`` maps them to the file's)."""
        return {**record, **{ours: record[theirs] for ours, theirs in self.fields.items() if theirs in record}}

    def _texts(self, record: dict[str, Any], where: str = "") -> list[str]:
        """The example's texts in the order ``transform`` takes them, checked."""
        *texts, last = (record[field] for field in FIELDS[self.task])
        if self.task == "multiple_choice":
            if isinstance(last, str):  # CSV: a JSON list in one column
                try:
                    last = json.loads(last)
                except json.JSONDecodeError:
                    last = None
            if not isinstance(last, list) or not last:
                raise RadfordError(f"{where}: choices must be a non-empty list of strings, got {record['choices']!r}")
            texts += last
        else:
            texts.append(last)
        for text in texts:
            if not isinstance(text, str):
                raise RadfordError(f"{where}: expected text, got {text!r}")
        return texts

    def _label(self, value: Any, where: str, choices: int) -> int | float:
        if self.task == "multiple_choice":
            index = _integer(value)
            if index is None or index >= choices:
                raise RadfordError(f"{where}: label {value!r} is not the index of one of its {choices} choices")
            return index
        if self.labels is not None:
            if value not in self.labels:
                raise RadfordError(f"{where}: label {value!r} is not one of the labels: {', '.join(self.labels)}")
            return self.labels.index(value)
        if self.task == "similarity":
            try:
                return float(value)
            except (TypeError, ValueError):
                raise RadfordError(f"{where}: similarity label {value!r} is not a number") from None
        index = _integer(value)
        if index is None:
            raise RadfordError(
                f"{where}: label {value!r} is not a class index 0..n-1; for string labels give data.init_args.labels"
            )
        return index

    # -- encoding: after a checkpoint's tokenizer is restored, so done when a loader is asked for ---------

    def _split_examples(self, split: str) -> list[Example]:
        if split not in self._examples:
            vocab_size = self.vocab_size
            records = self._split_records(split)
            texts = [self._texts(record) for _, record in records]
            flat = self.tokenizer.encode_batch([text for example in texts for text in example])
            examples, at = [], 0
            for (where, record), example_texts in zip(records, texts, strict=True):
                fields, at = flat[at : at + len(example_texts)], at + len(example_texts)
                label = None if split == "predict" else self._label(record["label"], where, len(example_texts) - 1)
                examples.append(Example(transform(self.task, fields, vocab_size, self.max_length), label))
            self._examples[split] = examples
        return self._examples[split]

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        return DataLoader(
            self._split_examples(split),
            batch_size=self.batch_size,
            shuffle=shuffle,
            collate_fn=collate,
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        # Validation is optional in fit: no val file, no validation loop.
        return self._loader("val") if self.sources["val"] is not None else []

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")

    def tokenizer_restored(self) -> None:
        self._examples.clear()  # encoded with the tokenizer the checkpoint replaced
