"""Image-text pairs for CLIP: WebDataset shards, a CSV of ``filepath,caption``, or the embedded shapes dataset.

Images go through CLIP's preprocessing (paper section 2.5; OpenAI's ``clip.load`` transform): bicubic resize of the
shorter side, centre crop, CLIP's channel mean and deviation; in training a random square crop takes the centre
crop's place, the only augmentation the paper uses. Decoding, preprocessing, tokenizing and batching all run on the
loader workers; the main process receives ``(pixels (B, 3, S, S), token ids (B, context_length))``.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from radford.data import shapes
from radford.data.pixels import DecodeFailures, normalize, open_image, resize_center_crop, to_tensor
from radford.data.shards import IMAGE_EXTENSIONS, pairs_from_csv, read_shards
from radford.data.tokenizer_state import TokenizerState
from radford.errors import RadfordError
from radford.tokenizers import Tokenizer
from radford.tokenizers.clip import CONTEXT_LENGTH, CLIPTokenizer

# The channel statistics OpenAI's CLIP normalises with (its released preprocessing; the paper does not list them).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def random_square_crop(image: Image.Image, size: int, scale: tuple[float, float] = (0.9, 1.0)) -> Image.Image:
    """A random square covering ``scale`` of the shorter side's square (by area), resized bicubically to ``size``."""
    width, height = image.size
    side = min(width, height) * math.sqrt(random.uniform(*scale))
    left, top = random.uniform(0, width - side), random.uniform(0, height - side)
    return image.resize((size, size), Image.BICUBIC, box=(left, top, left + side, top + side))


class Preprocess:
    """An image to the normalised ``(3, size, size)`` tensor CLIP reads; ``augment`` crops at random."""

    def __init__(self, size: int, augment: bool = False) -> None:
        self.size, self.augment = size, augment

    def __call__(self, image: Image.Image) -> Tensor:
        image = random_square_crop(image, self.size) if self.augment else resize_center_crop(image, self.size)
        return normalize(to_tensor(image), CLIP_MEAN, CLIP_STD)


SHAPES = "shapes"  # the embedded, generated image-caption pairs (radford.data.shapes)


class Collate:
    """Stack a list of ``(pixels, caption)`` into pixels and CLIP token ids, on the loader worker."""

    def __init__(self, tokenizer: CLIPTokenizer, context_length: int) -> None:
        self.tokenizer, self.context_length = tokenizer, context_length

    def __call__(self, samples: Sequence[tuple[Tensor, str]]) -> tuple[Tensor, Tensor]:
        pixels, captions = zip(*samples, strict=True)
        return torch.stack(pixels), self.tokenizer.tokenize(captions, self.context_length)


class Pairs(Dataset):
    """``(pixels, caption)`` from a list of (image path, caption) or from a ``Shapes``; ``name`` says where they come
    from. A listed image that does not decode is skipped with a warning (a neighbour is served in its place), and most
    failing stops the run (``DecodeFailures``)."""

    def __init__(self, source: list[tuple[Path, str]] | shapes.Shapes, preprocess: Preprocess, name: str) -> None:
        self.source, self.preprocess = source, preprocess
        self.failures = DecodeFailures(name, len(source))

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[Tensor, str]:
        if isinstance(self.source, shapes.Shapes):
            image, caption = self.source[index]
            return self.preprocess(image), caption
        return self.failures.first(index, self._load)

    def _load(self, index: int) -> tuple[Tensor, str]:
        path, caption = self.source[index]
        return self.preprocess(open_image(path)), caption

    def captions(self) -> list[str]:
        if isinstance(self.source, shapes.Shapes):
            return [self.source.sample(i).caption for i in range(len(self.source))]
        return [caption for _, caption in self.source]


class DecodeSample:
    """A WebDataset sample (an image under any of IMAGE_EXTENSIONS, the caption under ``txt``) to (pixels, caption)."""

    def __init__(self, preprocess: Preprocess) -> None:
        self.preprocess = preprocess

    def __call__(self, sample: dict[str, Any]) -> tuple[Tensor, str]:
        extension = next((ext for ext in IMAGE_EXTENSIONS if ext in sample), None)
        if extension is None:
            raise KeyError(f"image: it has {', '.join(k for k in sample if not k.startswith('__'))}")
        image = open_image(sample[extension], name=extension)
        return self.preprocess(image), sample["txt"].decode("utf-8").strip()


def _is_csv(source: str) -> bool:
    return source.lower().endswith(".csv")


class PairData(TokenizerState, L.LightningDataModule):
    """Image-caption pairs for contrastive training.

    Args:
        train: WebDataset shards (brace-expanded local paths or URLs: ``shards/train-{000000..000099}.tar``), or a CSV
            of ``filepath,caption`` (paths relative to the CSV), or ``shapes``: the embedded, generated dataset (the
            default). None: not given (a recipe that needs the user's pairs sets it so), which training refuses.
        val: the same kinds, for validation. Default: the shapes ``val`` split when training on shapes, else none.
        tokenizer: CLIP's BPE (``clip`` with ``path`` to OpenAI's vocabulary) or, by default, a small CLIP BPE learned
            from the training captions.
        image_size: side of the square images the model reads.
        context_length: tokens per caption, padded or truncated (CLIP's 77).
        batch_size: pairs per batch on each device.
        num_workers: loader worker processes (decoding and tokenizing run there).
        augment: random square crops for training instead of centre crops.
        shuffle_buffer: samples in the shuffling buffer of WebDataset training shards.
        resample: draw training shards with replacement, an endless stream for every process (the way to train on
            shards with several processes); ``samples_per_epoch`` then says how long an epoch is.
        samples_per_epoch: the samples of one epoch of resampled shards, over all processes (default: endless; set
            ``trainer.max_steps``).
        shapes_train: pairs in the shapes training split; shapes_val: in its validation split.
        seed: shuffling and resampling seed; the shapes dataset's pairs too.
    """

    def __init__(
        self,
        train: str | None = SHAPES,
        val: str | None = None,
        tokenizer: Tokenizer | None = None,
        image_size: int = 224,
        context_length: int = CONTEXT_LENGTH,
        batch_size: int = 256,
        num_workers: int = 0,
        augment: bool = True,
        shuffle_buffer: int = 2000,
        resample: bool = True,
        samples_per_epoch: int | None = None,
        shapes_train: int = 20000,
        shapes_val: int = 1000,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if image_size < 16 or batch_size < 1 or context_length < 2:
            raise RadfordError(
                f"PairData needs image_size >= 16, batch_size >= 1 and context_length >= 2, got "
                f"{image_size}, {batch_size} and {context_length}"
            )
        if num_workers < 0 or shuffle_buffer < 0:
            raise RadfordError(
                f"PairData needs num_workers >= 0 (0 loads in the main process) and shuffle_buffer "
                f">= 0, got {num_workers} and {shuffle_buffer}"
            )
        if tokenizer is not None and not isinstance(tokenizer, CLIPTokenizer):
            raise RadfordError(f"PairData needs CLIP's tokenizer (tokenizer: clip), got {type(tokenizer).__name__}")
        self.train = train
        self.val = SHAPES if train == SHAPES and val is None else val
        self.tokenizer: CLIPTokenizer = tokenizer if tokenizer is not None else CLIPTokenizer()
        self.image_size, self.context_length, self.batch_size = image_size, context_length, batch_size
        self.num_workers, self.augment, self.shuffle_buffer = num_workers, augment, shuffle_buffer
        self.resample, self.samples_per_epoch = resample, samples_per_epoch
        self.shapes_train, self.shapes_val, self.seed = shapes_train, shapes_val, seed
        if num_workers:
            # Workers tokenize; tokenizers' Rust threads, used to learn the vocabulary here, do not survive a fork.
            # Saying so up front silences its warning in every worker.
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    # -- sources ---------------------------------------------------------------------------------------------------

    def _pairs(self, source: str, split: shapes.Split, augment: bool) -> Pairs:
        preprocess = Preprocess(self.image_size, augment)
        if source == SHAPES:
            count = self.shapes_train if split == "train" else self.shapes_val
            return Pairs(shapes.Shapes(split, count, self.image_size, self.seed), preprocess, source)
        return Pairs(pairs_from_csv(source), preprocess, source)

    def _train(self) -> str:
        if self.train is None:
            raise RadfordError(
                "no training pairs: set data.init_args.train to your WebDataset shards "
                "('shards/train-{000000..000099}.tar') or a filepath,caption CSV, or 'shapes' for the "
                "generated demo"
            )
        return self.train

    def _training_captions(self) -> list[str]:
        train = self._train()
        if train == SHAPES or _is_csv(train):
            return self._pairs(train, "train", augment=False).captions()
        captions = read_shards(train, lambda sample: sample["txt"].decode("utf-8"))
        return list(captions)

    @property
    def vocab_size(self) -> int:
        """The model's vocabulary size; a tokenizer that learns its vocabulary learns it from the captions first."""
        if self.tokenizer.needs_training:
            self.tokenizer.train(self._training_captions())
        return self.tokenizer.vocab_size

    # -- loaders ---------------------------------------------------------------------------------------------------

    def _loader(self, source: str, training: bool) -> DataLoader:
        collate = Collate(self.tokenizer, self.context_length)
        workers = {"num_workers": self.num_workers, "persistent_workers": self.num_workers > 0}
        augment = self.augment and training
        if source == SHAPES or _is_csv(source):
            # Map-style: Lightning adds a DistributedSampler under DDP. Full batches only in training, so that
            # every process gathers features of the same shape.
            return DataLoader(
                self._pairs(source, "train" if training else "val", augment),
                self.batch_size,
                shuffle=training,
                drop_last=training,
                collate_fn=collate,
                **workers,
            )
        trainer = self.trainer
        world = trainer.world_size if trainer is not None else 1
        per_worker = None
        if training and self.resample and self.samples_per_epoch:
            per_worker = max(1, self.samples_per_epoch // (self.batch_size * world * max(1, self.num_workers)))
        stream = read_shards(
            source,
            DecodeSample(Preprocess(self.image_size, augment)),
            shuffle=self.shuffle_buffer if training else 0,
            resample=self.resample and training,
            seed=self.seed,
            batch_size=self.batch_size,
            collate=collate,
            partial=not training,
            batches_per_epoch=per_worker,
        )
        return DataLoader(stream, batch_size=None, **workers)

    def setup(self, stage: str | None = None) -> None:
        _ = self.vocab_size  # learned before the loaders' workers copy the tokenizer

    def train_dataloader(self) -> DataLoader:
        return self._loader(self._train(), training=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val, training=False) if self.val is not None else []


__all__ = ["CLIP_MEAN", "CLIP_STD", "Collate", "DecodeSample", "PairData", "Pairs", "Preprocess", "random_square_crop"]
