"""Byte-level BPE as GPT-2's: GPT-2's own vocabulary read from its files, or one learned from the corpus. Also where
BPE files are found on disk, and told apart by their content."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers

from radford.errors import RadfordError
from radford.hub import local_path
from radford.tokenizers.base import TOKENIZER_JSON, Tokenizer

EOT = "<|endoftext|>"
END_OF_WORD = "</w>"  # GPT-1's and CLIP's BPEs mark a word's last token with it
# A tokenizer on disk: one tokenizer.json, or a vocabulary + merges pair under Hugging Face's names (GPT-2's, GPT-1's
# and CLIP's alike) or under the names of GPT-2's and GPT-1's original releases. A folder is searched in this order.
BPE_PAIRS = (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe"), ("encoder_bpe_40000.json", "vocab_40000.bpe"))


def byte_characters() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes, in OpenAI's order (``bytes_to_unicode().values()``)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]


def byte_level(model: models.BPE) -> tokenizers.Tokenizer:
    """GPT-2's pipeline around a BPE model: bytes mapped to printable characters, split by GPT-2's regex."""
    backend = tokenizers.Tokenizer(model)
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    # Special, so "<|endoftext|>" written in the text is one id (as tiktoken's allowed_special="all").
    backend.add_special_tokens([EOT])
    return backend


class GPT2BPE(Tokenizer):
    """GPT-2's byte-level BPE (50257 tokens, <|endoftext|> = 50256) with a fixed vocabulary.

    ``path`` is a file or folder as ``from_files`` reads it: GPT-2's encoder.json + vocab.bpe, Hugging
    Face's vocab.json + merges.txt, or a byte-level BPE's tokenizer.json.
    """

    eot_token = EOT
    hf_class = "GPT2Tokenizer"

    def __init__(self, path: str) -> None:
        super().__init__()
        files = find_files(local_path(path))
        if len(files) == 1:
            backend = read_json(files[0])
            if not isinstance(backend.model, models.BPE) or backend.model.end_of_word_suffix:
                raise RadfordError(
                    f"GPT2BPE needs a byte-level BPE but {files[0]} holds another kind of tokenizer; "
                    "use radford.tokenizers.from_files for any kind"
                )
        else:
            vocab, merges = read_pair(*files)
            if word_final(vocab):
                raise RadfordError(
                    f"{files[0]} is a BPE whose tokens end words with {END_OF_WORD} (GPT-1's or "
                    "CLIP's), not GPT-2's byte-level one; use the gpt1 tokenizer, or "
                    "radford.tokenizers.from_files for any kind"
                )
            backend = byte_level(models.BPE(vocab, merges))
        self._backend = backend


class BPE(Tokenizer):
    """A byte-level BPE as GPT-2's, learned from the corpus, with the special token <|endoftext|>."""

    eot_token = EOT
    hf_class = "GPT2Tokenizer"
    min_vocab_size = 256 + 1  # every byte, and <|endoftext|>

    def __init__(self, vocab_size: int = 8192, min_frequency: int = 2) -> None:
        super().__init__()
        if vocab_size < self.min_vocab_size:
            raise RadfordError(
                f"BPE vocab_size {vocab_size} is too small: it needs at least {self.min_vocab_size} (256 bytes + {EOT})"
            )
        self.requested_vocab_size = vocab_size
        self.min_frequency = min_frequency

    def train(self, texts: Iterable[str]) -> None:
        """Learn merges until the vocabulary holds ``vocab_size`` tokens (fewer if the corpus runs out)."""
        backend = byte_level(models.BPE())
        trainer = trainers.BpeTrainer(
            vocab_size=self.requested_vocab_size,
            min_frequency=self.min_frequency,
            special_tokens=[EOT],
            # All 256 bytes up front, so text never seen in training still encodes.
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        backend.train_from_iterator(texts, trainer)
        self._backend = backend
        if self.vocab_size < self.requested_vocab_size:
            warnings.warn(
                f"BPE learned {self.vocab_size} tokens of the {self.requested_vocab_size} asked for: "
                "the corpus has no more pairs that occur min_frequency times",
                stacklevel=2,
            )


def find_files(path: Path) -> list[Path]:
    """The files that make up the tokenizer at ``path``: [tokenizer.json] or [vocabulary, merges]."""
    paired = {name for pair in BPE_PAIRS for name in pair}
    if path.is_file() and path.name not in paired:
        return [path]  # a tokenizer.json under any name
    # One file of a pair names its partner in the same folder; a folder is searched for every layout.
    folder, given = (path.parent, path.name) if path.is_file() else (path, None)
    for names in ((TOKENIZER_JSON,), *BPE_PAIRS):
        files = [folder / name for name in names]
        if (given is None or given in names) and all(file.is_file() for file in files):
            return files
    raise RadfordError(
        f"no tokenizer at {path}: looked for {TOKENIZER_JSON}, or "
        + ", or ".join(" + ".join(pair) for pair in BPE_PAIRS)
    )


def read_json(file: Path) -> tokenizers.Tokenizer:
    try:
        return tokenizers.Tokenizer.from_file(str(file))
    except Exception as error:  # tokenizers raises a bare Exception for a malformed file
        raise RadfordError(f"cannot read tokenizer from {file}: {error}") from error


def read_pair(vocab: Path, merges: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A BPE's vocabulary and merges from their two files."""
    try:
        return models.BPE.read_file(str(vocab), str(merges))
    except Exception as error:  # tokenizers raises a bare Exception for a malformed file
        raise RadfordError(f"cannot read tokenizer from {vocab} + {merges}: {error}") from error


def word_final(vocab: Mapping[str, int]) -> bool:
    """Whether a BPE vocabulary marks the tokens that end a word (GPT-1's and CLIP's: ``</w>``), rather than being
    byte-level as GPT-2's, whose tokens carry the space before a word. Told by content, as Hugging Face names both
    kinds' files alike: 80 % of GPT-1's tokens end in ``</w>``, next to none of a byte-level BPE's."""
    return sum(token.endswith(END_OF_WORD) for token in vocab) * 4 > len(vocab)
