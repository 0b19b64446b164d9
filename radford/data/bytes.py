"""Byte streams for the sentiment neuron's mLSTM (Radford et al. 2017, section 3): documents from text files or
from a text column of CSV/JSONL files, each preprocessed as OpenAI's released encoder does (``preprocess``), their
UTF-8 bytes concatenated into one stream that is cut into contiguous streams for truncated backpropagation.

Formats, by suffix (``.bz2`` or ``.gz`` after it is read compressed): ``.csv`` and ``.jsonl``/``.json`` give the
``text_field`` of every record; any other file gives one document per non-empty line (one review a line).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from radford.data import corpus
from radford.data.records import RECORD_FORMATS, field, file_format, open_text, read_records
from radford.data.tokenizer_state import TokenizerState
from radford.errors import RadfordError
from radford.tokenizers.bytes import VOCAB_SIZE, ByteTokenizer, preprocess

# Lightning warns that an IterableDataset's length may be wrong with several loader workers; StreamWindows is read
# in the main process, where its length is exact.
warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")


def documents(path: Path, text_field: str = "text") -> Iterator[str]:
    """The documents of one file: a record column, or the non-empty lines of text."""
    if file_format(path) in RECORD_FORMATS:
        for where, record in read_records(path):
            text = field(where, record, text_field)
            if not isinstance(text, str):
                raise RadfordError(f"{where}: field {text_field!r} is {type(text).__name__}, not text")
            yield text
        return
    try:
        with open_text(path) as file:
            yield from (line for line in file if line.strip())
    except (UnicodeDecodeError, OSError, EOFError) as error:
        raise RadfordError(f"cannot read {path} as UTF-8 text: {error}") from error


class StreamWindows(IterableDataset):
    """Truncated backpropagation's batches: the byte stream cut into ``batch_size`` contiguous streams (times the
    number of processes), batch k holding window k of each. Row r of consecutive batches reads on in one stream,
    so a model may carry its state from one batch to the next; an epoch reads every stream once, in order."""

    def __init__(self, data: np.ndarray, block_size: int, batch_size: int, rank: int = 0, world_size: int = 1):
        streams = batch_size * world_size
        length = (len(data) - 1) // streams  # each stream's inputs; its targets are one byte on
        if length < block_size:
            raise RadfordError(
                f"{len(data)} bytes are too few for {streams} streams of windows of {block_size}: "
                "give more text, or lower batch_size or block_size"
            )
        rows = torch.from_numpy(np.asarray(data[: streams * length + 1], dtype=np.int64))
        mine = slice(rank * batch_size, (rank + 1) * batch_size)
        self.inputs = rows[:-1].view(streams, length)[mine]
        self.targets = rows[1:].view(streams, length)[mine]
        self.block_size = block_size

    def __len__(self) -> int:
        return self.inputs.shape[1] // self.block_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for k in range(len(self)):
            window = slice(k * self.block_size, (k + 1) * self.block_size)
            yield self.inputs[:, window], self.targets[:, window]


class ByteData(TokenizerState, L.LightningDataModule):
    """Documents as one byte stream; the first part trains, the held-out tail validates and tests.

    Args:
        sources: files, folders or globs (see the module's docstring for formats).
        text_field: the column of CSV/JSONL records that holds the text.
        block_size: bytes per window (the paper's 256): backpropagation is truncated there.
        batch_size: contiguous streams read side by side (the paper's 128), per device.
        val_fraction: the last fraction of the stream, held out.
    """

    def __init__(
        self,
        sources: list[str] | str,
        text_field: str = "text",
        block_size: int = 256,
        batch_size: int = 128,
        val_fraction: float = 0.05,
    ) -> None:
        super().__init__()
        if not 0.0 < val_fraction < 1.0:
            raise RadfordError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
        if block_size < 1 or batch_size < 1:
            raise RadfordError(f"block_size and batch_size must be positive, got {block_size} and {batch_size}")
        self.sources = [sources] if isinstance(sources, str) else list(sources)
        self.text_field, self.block_size, self.batch_size = text_field, block_size, batch_size
        self.val_fraction = val_fraction
        self.tokenizer = ByteTokenizer()  # recorded in checkpoints, for radford generate
        self.data: np.ndarray | None = None

    @property
    def vocab_size(self) -> int:
        return VOCAB_SIZE

    def stream(self) -> np.ndarray:
        """Every document's preprocessed bytes, in the order of the sources, as one array."""
        if self.data is None:
            files = corpus.resolve(self.sources)
            stream = b"".join(preprocess(text) for path in files for text in documents(path, self.text_field))
            self.data = np.frombuffer(stream, dtype=np.uint8)
        return self.data

    def _loader(self, split: str) -> DataLoader:
        data = self.stream()
        cut = int(len(data) * (1.0 - self.val_fraction))
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        part = data[:cut] if split == "train" else data[cut:]
        try:
            windows = StreamWindows(part, self.block_size, self.batch_size, rank, world)
        except RadfordError as error:
            raise RadfordError(f"{split} split of {self.sources}: {error}") from error
        return DataLoader(windows, batch_size=None)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("val")


__all__ = ["ByteData", "ByteTokenizer", "StreamWindows", "documents", "preprocess"]
