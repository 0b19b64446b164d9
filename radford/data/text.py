"""Language-model data: text tokenized once into a flat memmap, served as random contiguous windows.

Token ids are cached as a flat uint16/uint32 file beside a small JSON of metadata, keyed by the sources
(paths, sizes, modification times) and the tokenizer, so a second run starts at once. Training draws
random windows; the windows of global batch ``g`` are a function of ``(seed, g)`` alone, which makes a
resumed run see exactly the batches an uninterrupted one would, and makes ``N`` DDP processes see the
rows of the same global batch one process would. Validation is the last ``val_fraction`` of the token
stream, cut into consecutive windows and evaluated whole. Testing evaluates the same tail, or with
``test_split="all"`` the whole stream, every token predicted once (zero-shot evaluation, GPT-2 paper
section 3).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from radford.data import corpus, datasets
from radford.data.tokenizer_state import TokenizerState
from radford.errors import RadfordError
from radford.io import write_atomically
from radford.models.common import IGNORE_INDEX
from radford.tokenizers import BPE, Tokenizer, from_json

# Lightning warns that an IterableDataset's length may be wrong with several workers; RandomWindows gives
# each worker its own batches, so the length is exact.
warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")

ENCODE_BATCH = 256  # documents (or chunks of one) handed to the tokenizer's parallel encoder at once


def cache_root() -> Path:
    """radford's cache folder (``$RADFORD_CACHE``, default ``~/.cache/radford``): the parent of the datasets' cache,
    read from there so that the environment variable is looked up in one place."""
    return datasets.cache_dir().parent


def _windows(tokens: np.ndarray, starts: np.ndarray, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    rows = np.stack([tokens[s : s + length + 1] for s in starts]).astype(np.int64)
    rows = torch.from_numpy(rows)
    return rows[:, :-1], rows[:, 1:]


class RandomWindows(IterableDataset):
    """Batches of random windows; batch ``g`` of the run is drawn from ``(seed, g)``.

    An epoch is as many batches as it takes to see the split's tokens once. Each rank takes its rows of
    the global batch, and each loader worker every ``num_workers``-th batch (the loader interleaves them
    back in order).
    """

    def __init__(
        self, tokens: np.ndarray, block_size: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        self.tokens, self.block_size, self.batch_size, self.seed = tokens, block_size, batch_size, seed
        self.rank, self.world_size = rank, world_size
        global_batch_tokens = block_size * batch_size * world_size
        self.batches_per_epoch = max(1, (len(tokens) - 1) // global_batch_tokens)
        self.first_batch = 0  # global index of the next batch to serve; moved by WindowLoader

    def __len__(self) -> int:
        return self.batches_per_epoch

    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        starts = rng.integers(0, len(self.tokens) - self.block_size, size=self.batch_size * self.world_size)
        mine = starts[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
        return _windows(self.tokens, mine, self.block_size)

    def __iter__(self):
        # The range is fixed now, not when the first batch is asked for: WindowLoader moves
        # ``first_batch`` on right after making an epoch's iterator.
        worker = get_worker_info()
        offset, step = (worker.id, worker.num_workers) if worker else (0, 1)
        epoch_end = (self.first_batch // self.batches_per_epoch + 1) * self.batches_per_epoch
        return map(self.batch, range(self.first_batch + offset, epoch_end, step))


class WindowLoader(DataLoader):
    """A loader over RandomWindows that moves on one epoch each time it is iterated.

    The position is assigned when an epoch's iterator is made, not counted as batches come out, so the
    batches Lightning prefetches never shift it. On resume the position comes from the trainer's own
    progress (see ``TextData.train_dataloader``); the loader's state records what the position means, so
    resuming with other data, batch size or seed fails with a clear message instead of training on.
    """

    def __init__(self, dataset: RandomWindows, num_workers: int = 0) -> None:
        super().__init__(dataset, batch_size=None, num_workers=num_workers, persistent_workers=False)

    def __iter__(self):
        dataset: RandomWindows = self.dataset
        iterator = super().__iter__()
        dataset.first_batch = (dataset.first_batch // dataset.batches_per_epoch + 1) * dataset.batches_per_epoch
        return iterator

    def state_dict(self) -> dict[str, int]:
        d: RandomWindows = self.dataset
        return {
            "seed": d.seed,
            "batches_per_epoch": d.batches_per_epoch,
            "batch_size": d.batch_size,
            "block_size": d.block_size,
            "world_size": d.world_size,
        }

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        now = self.state_dict()
        changed = [f"{k} {state_dict[k]} -> {now[k]}" for k in now if state_dict.get(k, now[k]) != now[k]]
        if changed:
            raise RadfordError(f"the checkpoint saw other batches than this run would serve: {', '.join(changed)}")


class ConsecutiveWindows(Dataset):
    """The held-out split as consecutive non-overlapping windows, every token predicted once."""

    def __init__(self, tokens: np.ndarray, block_size: int) -> None:
        self.tokens, self.block_size = tokens, block_size

    def __len__(self) -> int:
        return (len(self.tokens) - 1) // self.block_size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = _windows(self.tokens, np.array([index * self.block_size]), self.block_size)
        return x[0], y[0]


class StridedWindows(Dataset):
    """A whole token stream in windows of ``block_size`` that start ``stride`` tokens apart, every token
    after the first scored exactly once: the labels of targets an earlier window scored are IGNORE_INDEX.

    With ``stride == block_size`` the windows are consecutive and disjoint, and the first target of each
    sees one token of context. A smaller stride gives every target after the first window at least
    ``block_size - stride`` tokens of context for ``block_size / stride`` times the compute (the sliding
    window of Hugging Face's perplexity guide). The last window ends on the last token, overlapping the
    one before rather than being cut short, so every window has one length; a stream shorter than
    ``block_size`` is one window.
    """

    def __init__(self, tokens: np.ndarray, block_size: int, stride: int | None = None) -> None:
        self.tokens = tokens
        self.length = min(block_size, len(tokens) - 1)
        last = len(tokens) - 1  # the index of the last target; target i is predicted from tokens[:i]
        # The index of the last target of each window.
        self.ends = [*range(self.length, last, stride or block_size), last]

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.ends[index]
        x, y = _windows(self.tokens, np.array([end - self.length]), self.length)
        scored = end - self.ends[index - 1] if index else self.length
        labels = y[0].clone()  # y is a view of the same row as x
        labels[: self.length - scored] = IGNORE_INDEX
        return x[0], labels


class TextData(TokenizerState, L.LightningDataModule):
    """Text files tokenized once and cached; random windows for training, a fixed held-out tail.

    Args:
        sources: files, folders, globs, or ``stdlib`` (the Python standard library's source, on every machine).
        tokenizer: a registered tokenizer (``gpt2``, ``bpe``, ``char``); one that needs training learns its
            vocabulary from these sources (cached too). Default: byte-level BPE of 8192 tokens.
        block_size: tokens per training window.
        batch_size: windows per batch on each device.
        val_fraction: the last fraction of the token stream, held out for validation and test.
        test_split: what ``radford test`` evaluates: ``held_out``, the validation tail; or ``all``, every
            token of the sources (zero-shot evaluation of a pretrained model on whole files).
        test_stride: with ``test_split: all``, test windows start this many tokens apart (default
            ``block_size``: disjoint); fewer gives each token more context (see StridedWindows).
        seed: draws the training windows; the same seed gives the same batches.
        num_workers: loader worker processes.
        cache_dir: where token ids are cached (default ``$RADFORD_CACHE/text`` or ``~/.cache/radford/text``).
    """

    def __init__(
        self,
        sources: list[str] | str = corpus.STDLIB,
        tokenizer: Tokenizer | None = None,
        block_size: int = 256,
        batch_size: int = 16,
        val_fraction: float = 0.1,
        test_split: Literal["held_out", "all"] = "held_out",
        test_stride: int | None = None,
        seed: int = 1337,
        num_workers: int = 0,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 < val_fraction < 1.0:
            raise RadfordError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
        if block_size < 1 or batch_size < 1:
            raise RadfordError(f"block_size and batch_size must be positive, got {block_size} and {batch_size}")
        if num_workers < 0:
            raise RadfordError(f"num_workers must be 0 (load in the main process) or more, got {num_workers}")
        if test_split not in ("held_out", "all"):
            raise RadfordError(f"test_split must be 'held_out' or 'all', got {test_split!r}")
        if test_stride is not None and (test_split != "all" or not 1 <= test_stride <= block_size):
            raise RadfordError(
                f"test_stride {test_stride} needs test_split 'all' and 1 <= test_stride <= block_size ({block_size})"
            )
        self.sources = [sources] if isinstance(sources, str) else list(sources)
        self.tokenizer = tokenizer if tokenizer is not None else BPE()
        self.block_size, self.batch_size, self.val_fraction = block_size, batch_size, val_fraction
        self.test_split, self.test_stride = test_split, test_stride
        self.seed, self.num_workers = seed, num_workers
        self.cache_dir = Path(cache_dir) if cache_dir else cache_root() / "text"
        self.tokens: np.ndarray | None = None

    # -- preparation: once per corpus and tokenizer, then cached ---------------------------------------

    @property
    def vocab_size(self) -> int:
        """The model's vocabulary size; a tokenizer that needs training is trained (or loaded) first."""
        self._ready_tokenizer(self._files())
        return self.tokenizer.vocab_size

    @property
    def sequence_length(self) -> int:
        """Tokens a window gives the model, which it must hold: the CLI links it into a model that checks its
        pretrained context against it (``zeroshot``); a GPT gives the data its own block_size instead."""
        return self.block_size

    def _files(self) -> list[Path]:
        files = corpus.resolve(self.sources)
        if not any(file.stat().st_size for file in files):
            raise RadfordError(f"text sources {self.sources} are empty: there is no text to train on")
        return files

    def _ready_tokenizer(self, files: list[Path]) -> None:
        if not self.tokenizer.needs_training:
            return
        path = self.cache_dir / f"{corpus.fingerprint(files)}-{self.tokenizer.fingerprint()}.tokenizer.json"
        if not path.exists():
            self.tokenizer.train(corpus.documents(files))
            write_atomically(path, lambda tmp: tmp.write_text(self.tokenizer.to_json(), encoding="utf-8"))
        self.tokenizer = from_json(path.read_text(encoding="utf-8"))

    def _encode(self, files: list[Path], path: Path) -> None:
        dtype = np.uint16 if self.tokenizer.vocab_size <= np.iinfo(np.uint16).max + 1 else np.uint32
        eot = self.tokenizer.eot_id

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as out:
                pending: list[str] = []
                ends: set[int] = set()  # positions in pending of each document's last chunk

                def flush() -> None:
                    # One batch spans many documents, so that small files too are encoded on every core.
                    for i, ids in enumerate(self.tokenizer.encode_batch(pending)):
                        np.asarray(ids, dtype=dtype).tofile(out)
                        if i in ends and eot is not None:  # documents are separated as in GPT-2's training data
                            np.asarray([eot], dtype=dtype).tofile(out)
                    pending.clear()
                    ends.clear()

                for document in corpus.documents(files):
                    pending.extend(corpus.chunks(document))
                    ends.add(len(pending) - 1)
                    if len(pending) >= ENCODE_BATCH:
                        flush()
                flush()

        write_atomically(path, write)
        meta = {
            "dtype": np.dtype(dtype).name,
            "num_tokens": path.stat().st_size // np.dtype(dtype).itemsize,
            "vocab_size": self.tokenizer.vocab_size,
            "sources": [str(f) for f in files],
        }
        write_atomically(path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(meta, indent=1)))

    def prepare_data(self) -> None:
        self._load_tokens()

    def _load_tokens(self) -> np.ndarray:
        if self.tokens is None:
            files = self._files()
            self._ready_tokenizer(files)
            path = self.cache_dir / f"{corpus.fingerprint(files)}-{self.tokenizer.fingerprint()}.bin"
            if not path.with_suffix(".json").exists():
                self._encode(files, path)
            meta = json.loads(path.with_suffix(".json").read_text())
            self._check_length(meta["num_tokens"])
            self.tokens = np.memmap(path, dtype=meta["dtype"], mode="r")
        return self.tokens

    def _check_length(self, num_tokens: int) -> None:
        """Fail before a run starts when the text is too short for the windows this module serves."""
        if self.test_split == "all":  # an evaluation: one token and its successor are enough
            if num_tokens < 2:
                raise RadfordError(f"text sources {self.sources} hold {num_tokens} tokens: evaluating needs 2")
            return
        train = int(num_tokens * (1.0 - self.val_fraction))
        if min(train, num_tokens - train) < 2 * (self.block_size + 1):
            raise RadfordError(
                f"text sources {self.sources} hold only {num_tokens} tokens: too few for windows "
                f"of {self.block_size} in both splits with {self.val_fraction:.0%} held out"
            )

    # -- splits and loaders --------------------------------------------------------------------------

    def _split(self) -> tuple[np.ndarray, np.ndarray]:
        tokens = self._load_tokens()
        cut = int(len(tokens) * (1.0 - self.val_fraction))
        return tokens[:cut], tokens[cut:]

    def train_dataloader(self) -> WindowLoader:
        train, _ = self._split()
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        dataset = RandomWindows(train, self.block_size, self.batch_size, self.seed, rank, world)
        if trainer is not None:
            # Resuming: Lightning has restored its progress counters before asking for loaders, and the
            # total of batches fetched so far is the global index of the next batch.
            dataset.first_batch = trainer.fit_loop.epoch_loop.batch_progress.total.ready
        return WindowLoader(dataset, num_workers=self.num_workers)

    def _held_out_loader(self) -> DataLoader:
        _, held_out = self._split()
        return DataLoader(
            ConsecutiveWindows(held_out, self.block_size), batch_size=self.batch_size, num_workers=self.num_workers
        )

    def val_dataloader(self) -> DataLoader:
        return self._held_out_loader()

    def test_dataloader(self) -> DataLoader:
        if self.test_split == "held_out":
            return self._held_out_loader()
        windows = StridedWindows(self._load_tokens(), self.block_size, self.test_stride)
        return DataLoader(windows, batch_size=self.batch_size, num_workers=self.num_workers)
