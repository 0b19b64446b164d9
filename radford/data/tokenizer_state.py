"""The tokenizer travels with checkpoints as the data module's state: Lightning stores a data module's
``state_dict`` in every checkpoint and restores it on resume, and ``radford.load`` reads the tokenizer from there."""

from __future__ import annotations

from typing import Any

from radford.checkpoints import TOKENIZER_STATE
from radford.tokenizers import Tokenizer, from_json


class TokenizerState:
    """Mixin for a data module with a ``tokenizer``."""

    tokenizer: Tokenizer

    def state_dict(self) -> dict[str, Any]:
        return {TOKENIZER_STATE: self.tokenizer.to_json()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if TOKENIZER_STATE in state_dict:
            self.tokenizer = from_json(state_dict[TOKENIZER_STATE])
            self.tokenizer_restored()

    def tokenizer_restored(self) -> None:
        """Called when a checkpoint's tokenizer replaced the data module's: drop what the old one encoded."""
