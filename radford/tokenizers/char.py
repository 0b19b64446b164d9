"""One token per character, as nanoGPT's shakespeare_char."""

from __future__ import annotations

from collections.abc import Iterable

import tokenizers
from tokenizers import Regex, decoders, models, pre_tokenizers

from radford.errors import RadfordError
from radford.tokenizers.base import Tokenizer


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
        except RadfordError:
            raise
        except Exception as error:  # tokenizers raises a bare Exception for a word missing from the vocab
            known = self._trained().get_vocab()
            unseen = sorted({char for text in texts for char in text if char not in known})
            if not unseen:
                raise
            raise RadfordError(
                f"Char tokenizer cannot encode {', '.join(map(repr, unseen))}: not among the "
                f"{len(known)} characters it was trained on"
            ) from error
