"""Zero-shot evaluation of a pretrained GPT (GPT-2 paper section 3): no training, ``radford test`` only.

Two kinds of test batch, told apart by their type:

- language-model windows from ``text`` data, ``(input ids, labels)``: ``test_loss`` (mean NLL per token,
  nats), ``test_ppl`` (its exp) and ``test_bpb``, bits per byte: the total NLL in nats / ln 2 / the UTF-8
  bytes of text the scored target tokens stand for (section 3.1 reports bpb on enwik8 and text8). Counted
  per token, bytes do not depend on where windows cut the text, and a token holding part of a character
  counts the bytes it holds; special tokens (the <|endoftext|> that ``text`` data puts after each file)
  stand for no bytes, while predicting them still costs their NLL. With ``test_split: all`` every token of
  the files but the first is a target, so bpb is the bits per byte of the whole files.
- LAMBADA passages from ``lambada`` data, ``{"input_ids", "labels"}`` (section 3.3): ``test_lambada_acc``,
  the fraction of passages whose every target token is the model's argmax given the context and the target
  tokens before it (greedy decoding of the last word, read off one teacher-forced pass), and
  ``test_lambada_ppl``, the perplexity of the target tokens.

Labels equal to IGNORE_INDEX are not scored. Every figure is a ratio of sums over the whole split, added up
across processes (torchmetrics), so each token (each passage) weighs the same wherever it ran.
"""

from __future__ import annotations

import math

import lightning as L
import tokenizers
import torch
import torch.nn.functional as F
from tokenizers import decoders
from torch import Tensor
from torchmetrics import Metric

from radford.errors import RadfordError
from radford.models.common import IGNORE_INDEX
from radford.models.gpt import GPT
from radford.tokenizers import Tokenizer


def token_bytes(tokenizer: Tokenizer) -> Tensor:
    """The UTF-8 bytes of text each token id stands for (vocab_size,), for bits per byte.

    Byte-level BPE writes each byte as one character of its vocabulary (GPT-2's byte-to-unicode map), so a
    token's bytes are its length, also when it holds part of a character. Special tokens stand for no text.
    Other tokenizers (characters): the bytes of the token's decoded text.
    """
    backend = tokenizers.Tokenizer.from_str(tokenizer.to_json())
    special = {i for i, token in backend.get_added_tokens_decoder().items() if token.special}
    byte_level = isinstance(backend.decoder, decoders.ByteLevel)
    sizes = [
        0 if i in special else len(backend.id_to_token(i)) if byte_level else len(backend.decode([i]).encode())
        for i in range(tokenizer.vocab_size)
    ]
    return torch.tensor(sizes)


class Sums(Metric):
    """Named running totals in float64, added across processes when computed."""

    full_state_update = False

    def __init__(self, *names: str) -> None:
        super().__init__()
        self.names = names
        for name in names:
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, **values: Tensor | int) -> None:
        for name, value in values.items():
            setattr(self, name, getattr(self, name) + value)

    def compute(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in self.names}


class ZeroShot(L.LightningModule):
    """A pretrained GPT-1 or GPT-2 scored on test data it was not trained for.

    Args:
        pretrained: a radford checkpoint (.ckpt) or a Hugging Face GPT-2 / OpenAI GPT folder.
        vocab_size: the data's tokenizer's vocabulary (the CLI links it from the data); it must be the
            pretrained weights' vocabulary, or the tokens would index the wrong embeddings.
        sequence_length: the most tokens the data gives the model at once, its text windows or LAMBADA passages
            (the CLI links it from the data); at most the pretrained weights' block_size. None: not checked.
    """

    def __init__(self, pretrained: str, vocab_size: int, sequence_length: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        # GPT rebuilds either family (GPT-1's post-norm blocks too) from the checkpoint's architecture, and
        # refuses a vocab_size other than the weights'.
        self.model = GPT(vocab_size=vocab_size, pretrained=pretrained)
        # Checked here, where the CLI builds the classes, before the data is tokenized (minutes on a large corpus)
        # rather than at the first batch: longer windows would read positions the weights have no embedding for.
        context = self.model.hparams.block_size
        if sequence_length is not None and sequence_length > context:
            raise RadfordError(
                f"the data's block_size {sequence_length} exceeds {context}, the context (block_size) of {pretrained}: "
                f"set the data's block_size to {context} or less (--data.init_args.block_size {context})"
            )
        self.text = Sums("nats", "tokens", "bytes")
        self.lambada = Sums("correct", "passages", "nats", "tokens")
        self.token_bytes: Tensor | None = None

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.model(input_ids)

    def on_test_start(self) -> None:
        # The tokenizer that made the test tokens says how many bytes each stands for.
        tokenizer = getattr(self.trainer.datamodule, "tokenizer", None)
        if not isinstance(tokenizer, Tokenizer):
            raise RadfordError("zeroshot needs a data module with a tokenizer (text or lambada) to test on")
        self.token_bytes = token_bytes(tokenizer).to(self.device)

    def test_step(self, batch: tuple[Tensor, Tensor] | dict[str, Tensor], batch_idx: int) -> None:
        passages = isinstance(batch, dict)
        inputs, labels = (batch["input_ids"], batch["labels"]) if passages else batch
        logits = self(inputs)
        # Ignored labels get an NLL of 0.
        nll = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), reduction="none").double()
        scored = labels != IGNORE_INDEX
        if passages:
            correct = ((logits.argmax(-1) == labels) | ~scored).all(dim=1)
            self.lambada.update(correct=correct.sum(), passages=len(correct), nats=nll.sum(), tokens=scored.sum())
        else:
            self.text.update(nats=nll.sum(), tokens=scored.sum(), bytes=self.token_bytes[labels[scored]].sum())

    def on_test_epoch_end(self) -> None:
        if self.text.update_called:
            total = self.text.compute()
            loss = total["nats"] / total["tokens"]
            self.log_dict(
                {"test_loss": loss, "test_ppl": loss.exp(), "test_bpb": total["nats"] / math.log(2) / total["bytes"]}
            )
        if self.lambada.update_called:
            total = self.lambada.compute()
            self.log_dict(
                {
                    "test_lambada_acc": total["correct"] / total["passages"],
                    "test_lambada_ppl": (total["nats"] / total["tokens"]).exp(),
                }
            )
        self.text.reset()
        self.lambada.reset()
