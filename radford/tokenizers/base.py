"""The base of radford's text tokenizers: text <-> ids through a Hugging Face ``tokenizers.Tokenizer``.

Every tokenizer wraps a backend, so all of them serialise to the same tokenizer.json format (a checkpoint stores it,
``radford.tokenizers.files.from_json`` restores it) and batch-encode on all cores in Rust. The constructor
signatures double as the recipe schema: jsonargparse reads them.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import tokenizers

from radford.errors import RadfordError

TOKENIZER_JSON = "tokenizer.json"
# Half of a UTF-16 pair, alone in a str: what decoding with errors="surrogateescape" leaves for a bad byte.
SURROGATE = re.compile("[\ud800-\udfff]")


def check_unicode(texts: Iterable[str]) -> None:
    """Refuse text that holds a surrogate code point, which is not Unicode text (tokenizers cannot take it): one line
    naming the first one and where it is."""
    for text in texts:
        found = SURROGATE.search(text) if isinstance(text, str) else None
        if found:
            at = found.start()
            raise RadfordError(
                f"text {text[max(0, at - 20) : at + 20]!r} holds a lone surrogate {found.group()!r} "
                f"(U+{ord(found.group()):04X}) at character {at}, which is not Unicode text: read files as UTF-8, "
                "with errors='replace' for bad bytes, not 'surrogateescape'"
            )


class Tokenizer:
    """Base class: text <-> token ids through a ``tokenizers.Tokenizer`` backend.

    A trainable tokenizer has no backend until ``train`` builds one; until then it can only say what
    it would be (``fingerprint``) and everything else raises a RadfordError.
    """

    eot_token: str | None = None  # end-of-text special token, or None when the vocabulary has none
    # The transformers class that reads this tokenizer's Hugging Face files back exactly (radford.tokenizers.export).
    hf_class = "PreTrainedTokenizerFast"

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
        return [encoding.ids for encoding in self._encodings(texts)]

    def _encodings(self, texts: Iterable[str], add_special_tokens: bool = False) -> list[tokenizers.Encoding]:
        backend = self._trained()
        texts = list(texts)
        try:
            # The "fast" variant skips character offsets, which nothing here uses.
            return backend.encode_batch_fast(texts, add_special_tokens=add_special_tokens)
        except TypeError:  # tokenizers says only "must be str" for a str holding a surrogate: name it
            check_unicode(texts)
            raise

    def decode(self, ids: Sequence[int]) -> str:
        """The text for ``ids``, special tokens included, so that decode(encode(s)) == s for a tokenizer that keeps
        all of the text (GPT-1's and CLIP's lower-case it and normalise its spaces).

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
