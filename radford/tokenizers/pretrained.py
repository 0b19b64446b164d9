"""The tokenizer a pretrained model was trained with, from its checkpoint or model folder."""

from __future__ import annotations

from collections.abc import Sequence

from radford.checkpoints import saved_tokenizer
from radford.errors import RadfordError
from radford.tokenizers.base import Tokenizer


class Pretrained(Tokenizer):
    """The tokenizer a pretrained model was trained with, from its checkpoint: a radford ``.ckpt`` records it,
    a Hugging Face folder holds its files. Fine-tuning must encode text exactly as pre-training did, so this
    encodes and decodes through the saved tokenizer itself (CLIP's cleans text in Python before its pipeline)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        saved = saved_tokenizer(path)
        if saved is None:
            raise RadfordError(
                f"{path} holds no tokenizer: a radford .ckpt records its data module's, a model folder "
                "needs tokenizer.json or a vocabulary + merges pair (vocab.json + merges.txt)"
            )
        self._saved = saved
        self._backend = saved._trained()
        # GPT-2's vocabulary ends with <|endoftext|>; GPT-1's has no such token.
        self.eot_token = saved.eot_token
        self.hf_class = saved.hf_class

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self._saved.encode_batch(texts)

    def decode(self, ids: Sequence[int]) -> str:
        return self._saved.decode(ids)
