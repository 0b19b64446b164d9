"""The tokenizer a pretrained model was trained with, from its checkpoint or model folder."""

from __future__ import annotations

from radford.checkpoints import saved_tokenizer
from radford.errors import RadfordError
from radford.tokenizers.base import Tokenizer
from radford.tokenizers.bpe import EOT


class Pretrained(Tokenizer):
    """The tokenizer a pretrained model was trained with, from its checkpoint: a radford ``.ckpt`` records it,
    a Hugging Face folder holds its files. Fine-tuning must encode text exactly as pre-training did."""

    def __init__(self, path: str) -> None:
        super().__init__()
        tokenizer = saved_tokenizer(path)
        if tokenizer is None:
            raise RadfordError(f"{path} holds no tokenizer: a radford .ckpt records its data module's, a model folder "
                               "needs tokenizer.json or vocab.json + merges.txt")
        self._backend = tokenizer._trained()
        # GPT-2's vocabulary ends with <|endoftext|>; GPT-1's has no such token.
        self.eot_token = EOT if self._backend.token_to_id(EOT) is not None else None
