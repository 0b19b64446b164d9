"""Tokenizers: GPT-2's byte-level BPE, a byte-level BPE trained on the corpus, characters, and the tokenizer
a pretrained checkpoint carries.

Every tokenizer wraps a Hugging Face ``tokenizers.Tokenizer`` (the "backend"), so all of them serialize
to the same tokenizer.json format (a checkpoint stores it, ``from_json`` restores it) and batch-encode
on all cores in Rust. The constructor signatures double as the recipe schema: jsonargparse reads them.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import tokenizers
from tokenizers import Regex, decoders, models, pre_tokenizers, trainers

from radford.errors import RadfordError

EOT = "<|endoftext|>"
# A tokenizer on disk: one tokenizer.json, or a vocabulary + merges pair under Hugging Face's names or
# under the names of GPT-2's original release. A folder is searched in this order.
TOKENIZER_JSON = "tokenizer.json"
BPE_PAIRS = (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe"))
CHECKPOINT_SUFFIX = ".ckpt"  # a radford checkpoint, which records its tokenizer


class Tokenizer:
    """Base class: text <-> token ids through a ``tokenizers.Tokenizer`` backend.

    A trainable tokenizer has no backend until ``train`` builds one; until then it can only say what
    it would be (``fingerprint``) and everything else raises a RadfordError.
    """

    eot_token: str | None = None  # end-of-text special token, or None when the vocabulary has none

    def __init__(self) -> None:
        self._backend: tokenizers.Tokenizer | None = None

    def _trained(self) -> tokenizers.Tokenizer:
        if self._backend is None:
            raise RadfordError(f"{type(self).__name__} tokenizer is not trained yet: call train(texts) first")
        return self._backend

    @property
    def needs_training(self) -> bool:
        return self._backend is None

    @property
    def vocab_size(self) -> int:
        """Every id the tokenizer can produce, special tokens included."""
        return self._trained().get_vocab_size(with_added_tokens=True)

    @property
    def eot_id(self) -> int | None:
        return None if self.eot_token is None else self._trained().token_to_id(self.eot_token)

    def train(self, texts: Iterable[str]) -> None:
        """Learn the vocabulary from a corpus. A fixed vocabulary ignores it (and leaves texts unread)."""

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Encode many texts in parallel on all cores. Special tokens written in the text become their id."""
        # The "fast" variant skips character offsets, which nothing here uses.
        encodings = self._trained().encode_batch_fast(list(texts), add_special_tokens=False)
        return [encoding.ids for encoding in encodings]

    def decode(self, ids: Sequence[int]) -> str:
        """The text for ``ids``, special tokens included so that decode(encode(s)) == s.

        Ids outside the vocabulary decode to nothing (a model's vocabulary may be padded past it).
        """
        return self._trained().decode(list(ids), skip_special_tokens=False)

    def to_json(self) -> str:
        """The whole tokenizer as tokenizer.json text; ``from_json`` rebuilds it."""
        return self._trained().to_str()

    def fingerprint(self) -> str:
        """A short hash of what the tokenizer does, for cache keys of tokenized data.

        Trained: the hash of its serialization, so equal behaviour gives an equal fingerprint whichever
        class or file it came from. Untrained: the hash of its class and settings (its public attributes).
        """
        if self._backend is not None:
            identity = self._backend.to_str()
        else:
            settings = {name: value for name, value in vars(self).items() if not name.startswith("_")}
            identity = f"{type(self).__module__}.{type(self).__qualname__}{sorted(settings.items())}"
        return hashlib.sha256(identity.encode()).hexdigest()[:16]

    def save(self, path: str | os.PathLike) -> None:
        """Write tokenizer.json into the folder ``path``, or to ``path`` itself if it ends in .json."""
        path = Path(path)
        if path.suffix != ".json":
            path = path / TOKENIZER_JSON
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(), encoding="utf-8")


def _byte_level(model: models.BPE) -> tokenizers.Tokenizer:
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

    def __init__(self, path: str) -> None:
        super().__init__()
        backend = _read_backend(path)
        if not isinstance(backend.model, models.BPE):
            raise RadfordError(
                f"GPT2BPE needs a BPE tokenizer but {path} holds a {type(backend.model).__name__} one; "
                "use radford.tokenizers.from_files for any kind"
            )
        self._backend = backend


class BPE(Tokenizer):
    """A byte-level BPE as GPT-2's, learned from the corpus, with the special token <|endoftext|>."""

    eot_token = EOT
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
        backend = _byte_level(models.BPE())
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


class Char(Tokenizer):
    """One token per character; the vocabulary is the sorted characters of the corpus (as nanoGPT's
    shakespeare_char: Tiny Shakespeare gives 65). No special tokens, so eot_id is None."""

    def train(self, texts: Iterable[str]) -> None:
        seen: set[str] = set()
        for text in texts:
            seen.update(text)
        if not seen:
            raise RadfordError("Char tokenizer got an empty corpus: it learns its vocabulary from the text")
        backend = tokenizers.Tokenizer(models.WordLevel({char: i for i, char in enumerate(sorted(seen))}))
        # [\s\S] is any character, newlines included; each one is its own "word" of the WordLevel model.
        backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        backend.decoder = decoders.Fuse()  # join the characters back with nothing in between
        self._backend = backend

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        try:
            return super().encode_batch(texts)
        except Exception as error:  # tokenizers raises a bare Exception for a word missing from the vocab
            known = self._trained().get_vocab()
            unseen = sorted({char for text in texts for char in text if char not in known})
            if not unseen:
                raise
            raise RadfordError(
                f"Char tokenizer cannot encode {', '.join(map(repr, unseen))}: not among the "
                f"{len(known)} characters it was trained on"
            ) from error


def _find_files(path: Path) -> list[Path]:
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


def _read_backend(path: str | os.PathLike) -> tokenizers.Tokenizer:
    files = _find_files(Path(path).expanduser())
    try:
        if len(files) == 1:
            return tokenizers.Tokenizer.from_file(str(files[0]))
        return _byte_level(models.BPE.from_file(*map(str, files)))
    except Exception as error:  # tokenizers raises a bare Exception for a malformed file
        names = " + ".join(map(str, files))
        raise RadfordError(f"cannot read tokenizer from {names}: {error}") from error


def _wrap(backend: tokenizers.Tokenizer) -> Tokenizer:
    """The radford tokenizer around a loaded backend, chosen by its model.

    A byte-level BPE comes back as a trained ``BPE`` whichever way it was made (GPT-2's included):
    serialized, they differ only in their vocabulary, so nothing in the file tells them apart. CLIP's is told
    apart by its ``<|startoftext|>`` token.
    """
    if isinstance(backend.model, models.WordLevel):
        tokenizer: Tokenizer = Char()
    elif isinstance(backend.model, models.BPE) and backend.token_to_id("<|startoftext|>") is not None:
        from radford.tokenizers.clip import CLIPTokenizer  # clip.py builds on this module

        tokenizer = CLIPTokenizer()
    elif isinstance(backend.model, models.BPE):
        tokenizer = BPE(vocab_size=backend.get_vocab_size())
    else:
        raise RadfordError(
            f"unsupported tokenizer model {type(backend.model).__name__}; radford reads BPE and WordLevel"
        )
    tokenizer._backend = backend
    return tokenizer


def from_json(text: str) -> Tokenizer:
    """Rebuild a tokenizer from ``to_json()`` output (as a checkpoint stores it)."""
    try:
        backend = tokenizers.Tokenizer.from_str(text)
    except Exception as error:  # tokenizers raises a bare Exception for malformed JSON
        raise RadfordError(f"not a tokenizer.json: {error}") from error
    return _wrap(backend)


def from_files(path: str | os.PathLike) -> Tokenizer:
    """Load a tokenizer from a file or a folder.

    tokenizer.json rebuilds whatever it holds (as ``from_json``); vocab.json + merges.txt or GPT-2's
    encoder.json + vocab.bpe (either file of the pair, or their folder) give a ``GPT2BPE``; a radford
    ``.ckpt`` gives the tokenizer it records.
    """
    if Path(path).suffix == CHECKPOINT_SUFFIX:
        from radford.checkpoints import saved_tokenizer  # here: radford.checkpoints imports this module

        tokenizer = saved_tokenizer(path)
        if tokenizer is None:
            raise RadfordError(f"checkpoint {path} records no tokenizer: its data module had none")
        return tokenizer
    files = _find_files(Path(path).expanduser())
    if len(files) == 1:
        return _wrap(_read_backend(files[0]))
    return GPT2BPE(str(path))


class Pretrained(Tokenizer):
    """The tokenizer a pretrained model was trained with, from its checkpoint: a radford ``.ckpt`` records it,
    a Hugging Face folder holds its files. Fine-tuning must encode text exactly as pre-training did."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._backend = from_files(path)._trained()
        # GPT-2's vocabulary ends with <|endoftext|>; GPT-1's has no such token.
        self.eot_token = EOT if self._backend.token_to_id(EOT) is not None else None


__all__ = ["BPE", "EOT", "GPT2BPE", "Char", "Pretrained", "Tokenizer", "from_files", "from_json"]
