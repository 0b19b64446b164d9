"""LAMBADA-style last-word prediction (GPT-2 paper section 3.3): passages whose last word is the target.

A file is JSON lines, one passage a line, ``{"text": "..."}`` (OpenAI's ``lambada_test.jsonl`` has this
form). The target is the last whitespace-separated word; the context is everything before it. A space
right before the word belongs to the target, since GPT-2's byte-level BPE merges it into the word's
token (" dog"); other whitespace (a newline) stays in the context, where the BPE puts it too.

A passage is one row: the context and target tokens as inputs, labels IGNORE_INDEX everywhere except at
the target tokens, so one forward pass with teacher forcing scores every target token given the context
and the target tokens before it. Rows are padded on the right: attention is causal, so padding after a
passage never changes its predictions.
"""

from __future__ import annotations

import re
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from radford.data.records import json_records, open_text
from radford.data.tokenizer_state import TokenizerState
from radford.errors import RadfordError
from radford.models.common import IGNORE_INDEX
from radford.tokenizers import Tokenizer

_LAST_WORD = re.compile(r"\s\S+\Z")  # the whitespace before the last word, and the word


def split_last_word(text: str) -> tuple[str, str]:
    """(context, target) of a passage: the target is its last word, with the space before it if there is one.

    Raises ValueError for a passage of fewer than two words.
    """
    text = text.rstrip()
    last = _LAST_WORD.search(text)
    if last is None or not text[: last.start()].strip():
        raise ValueError(f"passage {text.strip()!r} has one word: no context to predict it from")
    cut = last.start() if text[last.start()] == " " else last.start() + 1
    return text[:cut], text[cut:]


def read_passages(path: str | Path) -> list[str]:
    """The passages of a JSON-lines file, one ``{"text": ...}`` a line; blank lines are skipped."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise RadfordError(f'LAMBADA file {str(path)!r} not found: give a JSON-lines file of {{"text": ...}}')
    passages = []
    try:
        with open_text(path) as file:
            for where, record in json_records(file, path):
                if not isinstance(record.get("text"), str):
                    raise RadfordError(f'{where}: no "text" field; each line must be {{"text": "..."}}')
                try:
                    split_last_word(record["text"])
                except ValueError as error:
                    raise RadfordError(f"{where}: {error}") from error
                passages.append(record["text"])
    except UnicodeDecodeError as error:
        raise RadfordError(f"{path} is not UTF-8 text (bad byte at offset {error.start}); convert it") from error
    if not passages:
        raise RadfordError(f"LAMBADA file {path} holds no passages")
    return passages


def encode_passage(context: list[int], target: list[int], block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input ids, labels) of one passage: labels are the next tokens at the target, IGNORE_INDEX elsewhere.

    A passage longer than block_size + 1 tokens keeps its last block_size + 1 (the context's start goes).
    """
    ids = torch.tensor((context + target)[-(block_size + 1) :])
    labels = ids[1:].clone()
    labels[: -len(target)] = IGNORE_INDEX
    return ids[:-1], labels


def collate(rows: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Pad a batch of passages on the right: inputs with 0 (never seen by earlier positions), labels ignored."""
    inputs = torch.nn.utils.rnn.pad_sequence([x for x, _ in rows], batch_first=True, padding_value=0)
    labels = torch.nn.utils.rnn.pad_sequence([y for _, y in rows], batch_first=True, padding_value=IGNORE_INDEX)
    return {"input_ids": inputs, "labels": labels}


class LambadaData(TokenizerState, L.LightningDataModule):
    """Last-word prediction passages for ``radford test`` (the ``zeroshot`` model scores them).

    Args:
        path: a JSON-lines file, one ``{"text": ...}`` passage a line.
        tokenizer: the pretrained model's tokenizer (``pretrained``, ``gpt2``); it must be trained already.
        batch_size: passages per batch on each device.
        block_size: the most tokens the model sees; a longer passage loses the start of its context.
        num_workers: loader worker processes.
    """

    def __init__(
        self, path: str, tokenizer: Tokenizer, batch_size: int = 8, block_size: int = 1024, num_workers: int = 0
    ) -> None:
        super().__init__()
        if block_size < 1 or batch_size < 1:
            raise RadfordError(f"block_size and batch_size must be positive, got {block_size} and {batch_size}")
        if num_workers < 0:
            raise RadfordError(f"num_workers must be 0 (load in the main process) or more, got {num_workers}")
        if tokenizer.needs_training:
            raise RadfordError(
                f"LAMBADA needs the pretrained model's tokenizer (pretrained, gpt2), got an untrained "
                f"{type(tokenizer).__name__}"
            )
        self.path, self.tokenizer = path, tokenizer
        self.batch_size, self.block_size, self.num_workers = batch_size, block_size, num_workers

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def sequence_length(self) -> int:
        """The most tokens a passage gives the model (see TextData.sequence_length)."""
        return self.block_size

    def test_dataloader(self) -> DataLoader:
        contexts, targets = zip(*map(split_last_word, read_passages(self.path)), strict=True)
        encoded = zip(
            self.tokenizer.encode_batch(list(contexts)), self.tokenizer.encode_batch(list(targets)), strict=True
        )
        rows = [encode_passage(context, target, self.block_size) for context, target in encoded]
        return DataLoader(rows, batch_size=self.batch_size, collate_fn=collate, num_workers=self.num_workers)
