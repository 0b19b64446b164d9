"""The base of radford's text tokenizers: text <-> ids through a Hugging Face ``tokenizers.Tokenizer``.

Every tokenizer wraps a backend, so all of them serialise to the same tokenizer.json format (a checkpoint stores it,
``radford.tokenizers.files.from_json`` restores it) and batch-encode on all cores in Rust. The constructor
signatures double as the recipe schema: jsonargparse reads them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import tokenizers

from radford.errors import RadfordError

TOKENIZER_JSON = "tokenizer.json"


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
