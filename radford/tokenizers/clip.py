"""CLIP's tokenizer (Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision",
section 2.4): a lower-cased byte-level BPE with a vocabulary of 49,408, every text wrapped in ``<|startoftext|>`` and
``<|endoftext|>`` and padded to a context of 77 tokens, as OpenAI's ``clip/simple_tokenizer.py`` encodes it.

The pipeline runs in the ``tokenizers`` library (Rust, all cores) and is built the way OpenAI builds its vocabulary
from the merges file: the 256 byte characters, the same 256 ending a word (``</w>``), one token per merge, then the
two special tokens, so the ids are OpenAI's. A small vocabulary can be learned from captions the same way (its
merges from ``tokenizers``' BPE trainer), for demos without the 16e6 file.

Text is cleaned first in Python exactly as OpenAI's and open_clip's tokenizers clean it: ``ftfy.fix_text`` (mojibake,
ligatures, full-width forms, curly quotes, control characters, NFC), HTML unescaped twice, runs of whitespace made
one space, lower case (Python's, which knows a word-final sigma). So any Unicode text encodes to their ids. Two
differences, both about the special tokens' names written in the text: each is its token wherever it stands (as in
transformers' CLIPTokenizer), where OpenAI's regex reads it so only where a word may start, not glued to punctuation
as in ``"!<|endoftext|>"``; and open_clip, which names them ``<start_of_text>`` / ``<end_of_text>``, never does.
"""

from __future__ import annotations

import gzip
import html
import json
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import ftfy
import tokenizers
import torch
from tokenizers import Regex, decoders, models, pre_tokenizers, processors, trainers

from radford.errors import RadfordError
from radford.hub import local_path
from radford.tokenizers.base import Tokenizer, check_unicode
from radford.tokenizers.bpe import byte_characters

SOT, EOT = "<|startoftext|>", "<|endoftext|>"
END_OF_WORD = "</w>"
CONTEXT_LENGTH = 77  # CLIP's text context (paper section 2.4: 76 tokens between the two special ones)
PAD_ID = 0  # OpenAI's tokenize() pads with zeros; the text encoder reads only up to <|endoftext|>
# OpenAI's vocabulary file holds more merges than CLIP uses: 49,152 - 256 - 2 of them, leaving room for the bytes.
OPENAI_VOCABULARY = "bpe_simple_vocab_16e6.txt.gz"
OPENAI_MERGES = 49152 - 256 - 2
# OpenAI's pre-tokenizer regex (simple_tokenizer.py), less its special tokens, which tokenizers matches itself.
# OpenAI's ignores case, which matters only twice in lower-cased text: "'\u017f" (long s) is "'s", and U+0345 (a
# combining mark that case-folds to a letter) matches no alternative, so it is dropped.
WORDS = r"""'[s\x{17f}]|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}\x{345}]+"""
# Python's \s, less the four separators U+001C-U+001F, which OpenAI's regex module does not count as whitespace.
WHITESPACE = re.compile(r"[^\S\x1c-\x1f]+")
BASE_TOKENS = 2 * 256 + 2  # bytes, bytes ending a word, and the two special tokens


def _backend(merges: Sequence[tuple[str, str]], vocab: dict[str, int] | None = None) -> tokenizers.Tokenizer:
    """CLIP's pipeline around a BPE of ``merges``; the vocabulary is OpenAI's construction unless given."""
    if vocab is None:
        base = byte_characters()
        tokens = [*base, *(c + END_OF_WORD for c in base), *("".join(merge) for merge in merges), SOT, EOT]
        vocab = {token: i for i, token in enumerate(tokens)}
    backend = tokenizers.Tokenizer(models.BPE(vocab, list(merges), end_of_word_suffix=END_OF_WORD))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(WORDS), behavior="removed", invert=True),  # keep the matches, drop the rest
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),  # bytes as characters, no GPT-2 split
        ]
    )
    backend.decoder = decoders.Sequence([decoders.Replace(END_OF_WORD, " "), decoders.ByteLevel()])
    backend.post_processor = processors.TemplateProcessing(
        single=f"{SOT} $A {EOT}", special_tokens=[(SOT, vocab[SOT]), (EOT, vocab[EOT])]
    )
    backend.add_special_tokens([SOT, EOT])
    return backend


def clean(text: str) -> str:
    """OpenAI's ``whitespace_clean(basic_clean(text)).lower()``; a lone surrogate, which ftfy would quietly replace,
    is refused as by every radford tokenizer."""
    check_unicode([text])
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return WHITESPACE.sub(" ", text).strip().lower()


def _pairs(lines: Iterable[str]) -> list[tuple[str, str]]:
    return [tuple(line.split()) for line in lines if line and not line.startswith("#version")]


def _read(path: Path) -> tokenizers.Tokenizer:
    """OpenAI's merges file (``bpe_simple_vocab_16e6.txt.gz``, or a folder that holds it), or a Hugging Face CLIP
    tokenizer folder."""
    if (path / OPENAI_VOCABULARY).is_file():
        path = path / OPENAI_VOCABULARY
    try:
        if path.is_file():
            with gzip.open(path, "rt", encoding="utf-8") as file:
                lines = file.read().split("\n")
            # The first line names the file; CLIP uses the first OPENAI_MERGES merges.
            return _backend(_pairs(lines[1 : OPENAI_MERGES + 1]))
        if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
            vocab = json.loads((path / "vocab.json").read_text(encoding="utf-8"))
            return _backend(_pairs((path / "merges.txt").read_text(encoding="utf-8").split("\n")), vocab)
        if (path / "tokenizer.json").is_file():
            model = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))["model"]
            merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
            return _backend(merges, model["vocab"])
    except (OSError, EOFError, ValueError, KeyError, TypeError) as error:
        raise RadfordError(f"cannot read CLIP's vocabulary from {path}: {error}") from error
    raise RadfordError(
        f"no CLIP vocabulary at {path}: give bpe_simple_vocab_16e6.txt.gz (OpenAI's CLIP or open_clip "
        "ship it) or a Hugging Face folder with vocab.json + merges.txt or tokenizer.json"
    )


class CLIPTokenizer(Tokenizer):
    """CLIP's BPE. ``path``: OpenAI's ``bpe_simple_vocab_16e6.txt.gz`` or a Hugging Face CLIP tokenizer folder
    (49,408 tokens). Without a path, a vocabulary of ``vocab_size`` tokens is learned from the training captions.

    ``encode`` gives a text's BPE ids alone (OpenAI's ``encode``); ``tokenize`` gives the model's input: a
    ``(texts, context_length)`` tensor of ``<|startoftext|>`` ids ``<|endoftext|>`` padded with zeros, truncated
    texts keeping their ``<|endoftext|>`` (as open_clip's ``tokenize``). ``<|endoftext|>`` is the largest id in
    both vocabularies, so a model finds it with ``argmax`` as OpenAI's does.
    """

    eot_token = EOT

    def __init__(self, path: str | None = None, vocab_size: int = 1024, min_frequency: int = 2) -> None:
        super().__init__()
        if path is not None:
            self._backend = _read(local_path(path))
        elif vocab_size <= BASE_TOKENS:
            raise RadfordError(
                f"CLIPTokenizer vocab_size {vocab_size} is too small: it needs more than "
                f"{BASE_TOKENS} (256 bytes, the same ending a word, {SOT} and {EOT})"
            )
        self.requested_vocab_size = vocab_size
        self.min_frequency = min_frequency

    def train(self, texts: Iterable[str]) -> None:
        """Learn merges from the captions, then build the vocabulary from them as OpenAI's is built."""
        if self._backend is not None:
            return
        learner = _backend([])
        trainer = trainers.BpeTrainer(
            vocab_size=self.requested_vocab_size + BASE_TOKENS,
            show_progress=False,
            min_frequency=self.min_frequency,
            end_of_word_suffix=END_OF_WORD,
        )
        learner.train_from_iterator(map(clean, texts), trainer)
        learned = json.loads(learner.to_str())["model"]["merges"]
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learned]
        self._backend = _backend(merges[: self.requested_vocab_size - BASE_TOKENS])
        if self.vocab_size < self.requested_vocab_size:
            warnings.warn(
                f"CLIPTokenizer learned {self.vocab_size} tokens of the {self.requested_vocab_size} asked "
                "for: the captions have no more pairs that occur min_frequency times",
                stacklevel=2,
            )

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return super().encode_batch(list(map(clean, texts)))

    def tokenize(self, texts: str | Sequence[str], context_length: int = CONTEXT_LENGTH) -> torch.Tensor:
        """The text encoder's input: ``(len(texts), context_length)`` int64 ids, zero-padded."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if context_length < 2:
            raise RadfordError(f"context_length must be at least 2 (for {SOT} and {EOT}), got {context_length}")
        encodings = self._encodings(map(clean, texts), add_special_tokens=True)
        ids = torch.full((len(texts), context_length), PAD_ID, dtype=torch.long)
        eot = self.eot_id
        for row, encoding in enumerate(encodings):
            tokens = encoding.ids[:context_length]
            tokens[-1] = eot  # a truncated text still ends, where the text encoder reads its features
            ids[row, : len(tokens)] = torch.tensor(tokens)
        return ids


__all__ = ["CONTEXT_LENGTH", "EOT", "SOT", "CLIPTokenizer"]
