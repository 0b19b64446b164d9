"""Bytes as tokens, for the sentiment neuron's byte-level mLSTM (Radford et al. 2017), with the preprocessing of
OpenAI's released encoder."""

from __future__ import annotations

import html

import tokenizers
from tokenizers import Regex, decoders, models, pre_tokenizers

from radford.tokenizers.base import Tokenizer
from radford.tokenizers.bpe import byte_characters

VOCAB_SIZE = 256


def preprocess(text: str) -> bytes:
    """A document as the reference encoder's ``preprocess`` makes it: HTML entities unescaped, newlines made
    spaces, the ends stripped, then a newline and a space in front and a space behind, in UTF-8."""
    return ("\n " + html.unescape(text).replace("\n", " ").strip() + " ").encode("utf-8")


class ByteTokenizer(Tokenizer):
    """Token id b is the byte b: UTF-8 in, and out (invalid sequences decode to U+FFFD until complete).

    Built from Hugging Face pieces so that checkpoints record it as tokenizer.json like every other tokenizer:
    GPT-2's byte-to-character map, one character per token, a word-level vocabulary of the 256 byte characters.
    """

    def __init__(self) -> None:
        super().__init__()
        chars = byte_characters()  # in OpenAI's order: the printable bytes (which stand for themselves) first
        printable = [ord(char) for char in chars if ord(char) < VOCAB_SIZE]
        order = printable + [b for b in range(VOCAB_SIZE) if b not in printable]
        backend = tokenizers.Tokenizer(models.WordLevel({char: b for b, char in zip(order, chars, strict=True)}))
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
                pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated"),  # every byte's character a word
            ]
        )
        backend.decoder = decoders.ByteLevel()
        self._backend = backend
