"""GPT-1 and GPT-2: decoder-only transformer language models (Radford et al. 2018, "Improving Language
Understanding by Generative Pre-Training"; Radford et al. 2019, "Language Models are Unsupervised Multitask
Learners"), written to load OpenAI's released weights through Hugging Face's ``OpenAIGPTLMHeadModel`` and
``GPT2LMHeadModel`` layouts.

One model, two configurations: GPT-2's blocks (paper section 2.3, OpenAI's ``gpt-2/src/model.py``) normalise
the input of each sub-block and end with a final LayerNorm; GPT-1's (paper section 3.1, OpenAI's
``finetune-transformer-lm``) normalise each sub-block's output after the residual sum (``post_norm``). The
optimizer and schedule follow GPT-3 paper appendix B for GPT-2, whose paper does not state its own, and GPT-1
paper section 4.1 for GPT-1.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributed.fsdp import FSDPModule, fully_shard
from torchmetrics import MeanMetric

from radford.checkpoints import read_weights
from radford.errors import RadfordError
from radford.models.common import (
    adamw,
    check_sampling,
    inference,
    length_sorted_batches,
    logging_step,
    muon,
    sampler,
    warmup_cosine_schedule,
)
from radford.throughput import gpt_flops_per_token

# The arguments that shape the weights: a pretrained checkpoint's replace the constructor's.
ARCHITECTURE = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "bias", "post_norm")
OPTIMIZERS = ("adamw", "muon")


class KVCache:
    """One layer's keys and values for the positions seen so far, preallocated to block_size, so that
    generating a token costs one position's work instead of a pass over the whole context."""

    def __init__(self, batch_size: int, n_head: int, block_size: int, head_size: int, like: Tensor):
        # Zeros, not uninitialised memory: a static cache's attention reads every slot, and a masked slot's value
        # still multiplies its zero weight (0 x NaN is NaN).
        self.k = like.new_zeros(batch_size, n_head, block_size, head_size)
        self.v = torch.zeros_like(self.k)
        self.length = 0

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store the new positions' keys and values (batch, head, time, head_size); return every position's."""
        start, self.length = self.length, self.length + k.shape[2]
        self.k[:, :, start : self.length] = k
        self.v[:, :, start : self.length] = v
        return self.k[:, :, : self.length], self.v[:, :, : self.length]

    def write(self, k: Tensor, v: Tensor, position: Tensor) -> tuple[Tensor, Tensor]:
        """Store one position's keys and values (batch, head, 1, head_size) at ``position`` (a 0-d tensor) and return
        the whole buffers: a static cache, whose shapes never change, so that a compiled decode step compiles once.
        The caller masks the slots past ``position``."""
        self.k.index_copy_(2, position.view(1), k)
        self.v.index_copy_(2, position.view(1), v)
        return self.k, self.v


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which each position sees only itself and earlier positions."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if n_embd % n_head:
            raise RadfordError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.n_head = n_head
        self.dropout = dropout
        # Query, key and value in one matmul, in that order along the output, as in OpenAI's code.
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, cache: KVCache | None = None, position: Tensor | None = None) -> Tensor:
        """With ``position`` (one new token, a 0-d tensor), ``cache`` is read as a static cache (``KVCache.write``)."""
        B, T, C = x.shape
        q, k, v = (z.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for z in self.c_attn(x).split(C, 2))
        if position is not None:
            k, v = cache.write(k, v, position)
            mask, causal = (torch.arange(k.shape[2], device=x.device) <= position)[None], False
        else:
            if cache is not None:
                k, v = cache.append(k, v)
            # The T queries are the last T of the keys' positions. is_causal aligns its mask top-left, which is right
            # when there are no earlier keys (training, a first pass over a prompt); one new query sees every key.
            past = k.shape[2] - T
            mask = (
                None if past == 0 or T == 1 else torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(past)
            )
            causal = past == 0
        dropout = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))


class MLP(nn.Module):
    """Position-wise feed-forward network with a 4x wider hidden layer (GPT-1 paper section 4.1)."""

    def __init__(self, n_embd: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        # The tanh approximation of GELU, as both of OpenAI's codebases compute it; the weights were trained with
        # it. HF spells it activation_function="gelu_new" for GPT-2 and afn="gelu" for OpenAI GPT (which maps
        # that name to gelu_new, and has no "gelu_new" key).
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Transformer block. GPT-2 (paper section 2.3) normalises each sub-block's input; GPT-1 (post_norm; paper
    section 3.1, following the original Transformer) normalises the residual sum after each sub-block."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True, post_norm: bool = False):
        super().__init__()
        self.post_norm = post_norm
        self.ln_1 = nn.LayerNorm(n_embd, eps=1e-5, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = nn.LayerNorm(n_embd, eps=1e-5, bias=bias)
        self.mlp = MLP(n_embd, dropout, bias)

    def forward(self, x: Tensor, cache: KVCache | None = None, position: Tensor | None = None) -> Tensor:
        if self.post_norm:
            x = self.ln_1(x + self.attn(x, cache, position))
            return self.ln_2(x + self.mlp(x))
        x = x + self.attn(self.ln_1(x), cache, position)
        return x + self.mlp(self.ln_2(x))


class GPT(L.LightningModule):
    """GPT language model. Defaults are GPT-2 small (124M); GPT1 holds GPT-1's. A batch is (input ids,
    next-token ids). ``pretrained`` names a checkpoint whose architecture and weights replace the architecture
    arguments and the random init (the other arguments stay as given). ``optimizer`` is ``adamw`` (the papers'), or
    ``muon``: Muon for the blocks' weight matrices at ``muon_learning_rate``, AdamW at ``learning_rate`` for the rest
    (``radford.models.common.muon``); the schedule scales both."""

    feature_input = "texts"  # radford.eval.probe.TextFeatures
    feature_description = "final hidden state at the last token"  # what radford probe reports and plots

    def __init__(
        self,
        vocab_size: int = 50257,
        block_size: int = 1024,
        n_layer: int = 12,
        n_head: int = 12,
        n_embd: int = 768,
        dropout: float = 0.0,
        bias: bool = True,
        post_norm: bool = False,
        learning_rate: float = 6e-4,
        min_learning_rate: float = 6e-5,
        weight_decay: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.95),
        warmup_steps: int = 100,
        decay_steps: int | None = None,
        optimizer: Literal["adamw", "muon"] = "adamw",
        muon_learning_rate: float = 0.02,
        pretrained: str | None = None,
    ):
        super().__init__()
        arch = dict(
            vocab_size=vocab_size,
            block_size=block_size,
            n_layer=n_layer,
            n_head=n_head,
            n_embd=n_embd,
            bias=bias,
            post_norm=post_norm,
        )
        state = None
        if pretrained is not None:
            loaded, state = pretrained_gpt(pretrained)
            if loaded["vocab_size"] != vocab_size:
                raise RadfordError(
                    f"vocab_size {vocab_size} (the tokenizer's) does not match the {loaded['vocab_size']} tokens of "
                    f"{pretrained}: use the tokenizer the weights were trained with"
                )
            arch.update(loaded)
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if arch[name] <= 0:
                raise RadfordError(f"{name} must be positive, got {arch[name]}")
        if not 0.0 <= dropout < 1.0:
            raise RadfordError(f"dropout must be in [0, 1), got {dropout}")
        if optimizer not in OPTIMIZERS:
            raise RadfordError(f"unknown optimizer {optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        # Recorded: the arguments as given, less the checkpoint path, then the architecture as built, which the
        # checkpoint may have replaced. A checkpoint of this run then rebuilds from its own hyperparameters and
        # weights, without the original file.
        self.save_hyperparameters(ignore="pretrained")
        self.save_hyperparameters(arch)

        n_embd, n_layer = arch["n_embd"], arch["n_layer"]
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(arch["vocab_size"], n_embd),
                # Learned positions rather than sinusoids, as in GPT-1 paper section 4.1.
                wpe=nn.Embedding(arch["block_size"], n_embd),
                drop=nn.Dropout(dropout),
                h=nn.ModuleList(
                    Block(n_embd, arch["n_head"], dropout, arch["bias"], arch["post_norm"]) for _ in range(n_layer)
                ),
            )
        )
        if not arch["post_norm"]:
            # GPT-2 paper section 2.3: a final LayerNorm, since pre-LN blocks leave the residual unnormalised.
            self.transformer.ln_f = nn.LayerNorm(n_embd, eps=1e-5, bias=arch["bias"])
        self.lm_head = nn.Linear(n_embd, arch["vocab_size"], bias=False)
        # The output projection is the token embedding, as in OpenAI's code (logits = h @ wte.T).
        self.transformer.wte.weight = self.lm_head.weight

        # The token-weighted mean cross-entropy of the split: its perplexity is exp of it, not a mean of batches'.
        self.eval_loss = nn.ModuleDict({"val": MeanMetric(), "test": MeanMetric()})

        if state is not None and not self.lm_head.weight.is_meta:  # a shape-only (meta) build holds no weights
            try:
                self.load_state_dict(state)
            except RuntimeError as error:
                detail = " ".join(str(error).split())
                raise RadfordError(
                    f"the weights of {pretrained} do not fit their architecture: {detail[:300]}"
                ) from error
        else:
            self._init_parameters()

    def _init_parameters(self) -> None:
        # N(0, 0.02) suffices because LayerNorm is used throughout (GPT-1 paper section 4.1).
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        if not self.hparams.post_norm:
            # GPT-2 paper section 2.3 scales residual layers by 1/sqrt(N), N residual layers: two per block.
            # GPT-1 has no such scaling.
            for name, param in self.named_parameters():
                if name.endswith("c_proj.weight"):
                    nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * self.hparams.n_layer))

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Parameter count; non_embedding leaves out positions (token embeddings count: they are lm_head)."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wpe.weight.numel() if non_embedding else n

    def kv_cache(self, batch_size: int) -> list[KVCache]:
        """An empty key/value cache for ``hidden_states``, one entry per layer."""
        hp = self.hparams
        return [
            KVCache(batch_size, hp.n_head, hp.block_size, hp.n_embd // hp.n_head, self.lm_head.weight)
            for _ in range(hp.n_layer)
        ]

    def hidden_states(self, input_ids: Tensor, cache: list[KVCache] | None = None) -> Tensor:
        """The final hidden states (batch, time, n_embd) the LM head reads, for token ids (batch, time): after
        ln_f for GPT-2, the last block's output for GPT-1. With a cache, input_ids continue the cached positions."""
        start = cache[0].length if cache else 0
        end = start + input_ids.shape[1]
        if end > self.hparams.block_size:
            raise RadfordError(f"input length {end} exceeds block_size {self.hparams.block_size}")
        pos = torch.arange(start, end, device=input_ids.device)
        x = self.transformer.drop(self.transformer.wte(input_ids) + self.transformer.wpe(pos))
        for block, layer_cache in zip(self.transformer.h, cache or [None] * len(self.transformer.h), strict=True):
            x = block(x, layer_cache)
        return self.transformer.ln_f(x) if "ln_f" in self.transformer else x

    def forward(self, input_ids: Tensor) -> Tensor:
        """Next-token logits (batch, time, vocab) for token ids (batch, time)."""
        return self.lm_head(self.hidden_states(input_ids))

    def decode_step(self, input_ids: Tensor, position: Tensor, cache: list[KVCache]) -> Tensor:
        """Next-token logits (batch, vocab) for one token a row (batch, 1) at ``position`` (a 0-d tensor), reading and
        extending ``cache`` as a static cache: every shape is fixed, so ``torch.compile`` compiles it once for a whole
        generation. The attention covers all block_size slots (the unwritten ones masked): more arithmetic than the
        growing cache of ``hidden_states``, fewer launches once compiled."""
        x = self.transformer.wte(input_ids) + self.transformer.wpe(position.view(1))
        for block, layer_cache in zip(self.transformer.h, cache, strict=True):
            x = block(x, layer_cache, position)
        if "ln_f" in self.transformer:
            x = self.transformer.ln_f(x)
        return self.lm_head(x[:, -1])

    def compiled_decode_step(self) -> Callable[[Tensor, Tensor, list[KVCache]], Tensor]:
        """``decode_step`` compiled (inductor, static shapes), made on first use and kept with the model. On a CPU
        inductor's C++ wrapper calls the kernels with no Python between them: a small model's step then takes half
        an eager step's time, where the default Python wrapper is slower than eager."""
        if "_compiled_decode_step" not in self.__dict__:
            options = {"cpp_wrapper": True} if self.lm_head.weight.device.type == "cpu" else None
            self.__dict__["_compiled_decode_step"] = torch.compile(self.decode_step, dynamic=False, options=options)
        return self.__dict__["_compiled_decode_step"]

    def features(self, inputs: Sequence[Any], batch_size: int = 32) -> Tensor:
        """Frozen features of ``inputs`` (``feature_input``: texts for GPT), one row each: the final hidden state
        (what the LM head reads) at each text's last token, (len(texts), n_embd); what ``radford probe`` fits on. A
        text longer than block_size keeps its last block_size tokens. A subclass for other inputs overrides
        ``feature_ids`` and ``pooled_features``, not this."""
        encoded = [ids[-self.hparams.block_size :] for ids in self.feature_ids(inputs)]
        empty = next((i for i, ids in enumerate(encoded) if not ids), None)
        if empty is not None:
            raise RadfordError(f"input {empty} encodes to no tokens: a GPT's features need at least one")
        result = torch.empty(len(encoded), self.hparams.n_embd)
        device = self.lm_head.weight.device
        with inference(self):
            for rows in length_sorted_batches([len(ids) for ids in encoded], batch_size):
                lengths = torch.tensor([len(encoded[i]) for i in rows], device=device)
                # Padded on the right: causal attention keeps the padding out of every real position.
                ids = torch.zeros(len(rows), int(lengths.max()), dtype=torch.long, device=device)
                for row, i in enumerate(rows):
                    ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
                result[rows] = self.pooled_features(ids, lengths).float().cpu()
        return result

    def feature_ids(self, texts: Sequence[Any]) -> list[list[int]]:
        """The token ids ``features`` reads for each input: the texts, encoded by the model's tokenizer."""
        if getattr(self, "tokenizer", None) is None:
            raise RadfordError("this GPT has no tokenizer to encode texts with (radford.load sets the saved one)")
        return self.tokenizer.encode_batch(list(texts))

    def pooled_features(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """One feature row per sequence of right-padded ``ids`` (batch, time) of ``lengths``: the final hidden
        state at its last token."""
        return self.hidden_states(ids)[torch.arange(len(ids), device=ids.device), lengths - 1]

    def generate(
        self,
        input_ids: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        compiled: bool = False,
    ) -> Iterator[Tensor]:
        """Continue prompts (batch, time), yielding the next token ids (batch,) one step at a time.

        temperature 0 is greedy; top_k keeps the k likeliest tokens and top_p the smallest set whose probability
        reaches p (see ``sample``). Each step runs in eval mode without autograd and then restores the model's mode,
        so a caller may train between steps. With use_cache the prompt is read once and each step then reads one
        token, attending to the cached keys and values. Past block_size the context is the last block_size tokens,
        as without a cache; since every position shifts as the window slides, the cache is then rebuilt on that
        window (the last block_size - 1 tokens and the new one) at every step, which costs a full forward.
        ``compiled`` decodes each token after the prompt with ``compiled_decode_step`` (a static cache; the first
        call compiles, which takes a while).
        """
        check_sampling(input_ids, max_new_tokens, temperature, top_k, top_p)
        pick = sampler(temperature, top_k, top_p, generator)
        # A function that returns the generator, so that the checks above run at the call, not at the first step.
        return self._generate(input_ids, max_new_tokens, pick, use_cache, compiled)

    def _generate(
        self, ids: Tensor, max_new_tokens: int, pick: Callable[[Tensor], Tensor], use_cache: bool, compiled: bool
    ) -> Iterator[Tensor]:
        block_size = self.hparams.block_size
        cache = self.kv_cache(ids.shape[0]) if use_cache else None
        step = self.compiled_decode_step() if compiled else None
        new = ids  # the tokens the cache has not seen
        for _ in range(max_new_tokens):
            with inference(self):
                if cache is None:
                    logits = self.lm_head(self.hidden_states(ids[:, -block_size:])[:, -1])
                elif step is not None and new.shape[1] == 1 and cache[0].length < block_size:
                    logits = step(new, torch.tensor(cache[0].length, device=ids.device), cache)
                    for layer in cache:
                        layer.length += 1
                else:
                    if cache[0].length + new.shape[1] > block_size:
                        for layer in cache:
                            layer.length = 0
                        new = ids[:, -block_size:]
                    logits = self.lm_head(self.hidden_states(new, cache)[:, -1])
                next_ids = pick(logits)
                ids = torch.cat([ids, next_ids[:, None]], dim=1)[:, -block_size:]
                new = next_ids[:, None]
            # A clone made outside inference mode is an ordinary tensor, which a caller may train on.
            yield next_ids.clone()

    def loss(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        """Mean next-token cross-entropy over every position of the batch."""
        x, y = batch
        return F.cross_entropy(self(x).flatten(0, 1), y.flatten())

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self.loss(batch)
        if logging_step(self._trainer):
            # The mean over processes: under DDP the logged curve is the global batch's, as one process would log.
            self.log("train_loss", loss, prog_bar=True, sync_dist=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: tuple[Tensor, Tensor], split: str) -> None:
        self.eval_loss[split].update(self.loss(batch), weight=batch[1].numel())

    def on_validation_epoch_end(self) -> None:
        self._log_split("val")

    def on_test_epoch_end(self) -> None:
        self._log_split("test")

    def _log_split(self, split: str) -> None:
        # Logged once a split, not at every batch (a self.log costs a small model's validation several per cent). The
        # metric sums across processes when computed (torchmetrics), so every token of the split weighs the same
        # wherever it ran, and every process logs the same figures (sync_dist averages equal values).
        loss = self.eval_loss[split].compute()
        self.eval_loss[split].reset()
        self.log(f"{split}_loss", loss, sync_dist=True)
        self.log(f"{split}_ppl", loss.exp(), sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        # A subclass whose constructor does not take the optimizer's arguments (the iGPT plugin) records none.
        if hp.get("optimizer", "adamw") == "muon":
            # Muon (Jordan et al. 2024) orthogonalises the updates of the blocks' weight matrices; the embedding
            # (also the head), positions, gains and biases stay with AdamW, as in modded-nanogpt and nanochat.
            matrices = [p for block in self.transformer.h for p in block.parameters() if p.dim() == 2]
            optimizer = muon(self, matrices, hp.muon_learning_rate, hp.learning_rate, hp.betas, hp.weight_decay)
        else:
            optimizer = adamw(self, hp.learning_rate, hp.betas, hp.weight_decay)
        return warmup_cosine_schedule(optimizer, self)

    # -- speed and scale (radford.throughput, recipes/compile.yaml, recipes/strategy/fsdp.yaml) ------------------

    def training_flops(self, batch: tuple[Tensor, Tensor]) -> int:
        """Model FLOPs of a training step on ``batch``, for the MFU ``radford.throughput.SpeedMonitor`` logs: 6N +
        attention per token (PaLM appendix B), N the weights each token multiplies (the tied embedding counts once,
        as the head; positions are a lookup)."""
        ids = batch[0]
        hp = self.hparams
        return ids.numel() * gpt_flops_per_token(self.num_parameters(), hp.n_layer, hp.n_embd, ids.shape[1])

    def compile_units(self) -> list[nn.Module]:
        """What ``radford.throughput.Compile`` compiles: each block (the blocks share their code, so one compilation
        serves all, and FSDP shards the same units)."""
        return list(self.transformer.h)

    def configure_model(self) -> None:
        """Under Lightning's ModelParallelStrategy (``recipes/strategy/fsdp.yaml``), shard parameters, gradients and
        optimizer state over every process with FSDP2: each block as a unit, then the rest (the tied embedding and
        head, positions, final LayerNorm) with the model."""
        if self.device_mesh is None or isinstance(self, FSDPModule):  # not sharded, or sharded already
            return
        for block in self.transformer.h:
            fully_shard(block)
        fully_shard(self)


def pretrained_gpt(path: str) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The architecture (``ARCHITECTURE``) and weights of the GPT a checkpoint holds: a radford .ckpt of a GPT, or
    a folder in a format radford reads (a Hugging Face GPT-2 or OpenAI GPT folder)."""
    weights = read_weights(path)
    if not issubclass(weights.model_class, GPT):
        raise RadfordError(
            f"{path} holds a {weights.model_class.__name__}, not a GPT's weights; load it whole with radford.load"
        )
    absent = [name for name in ARCHITECTURE if name not in weights.hparams]
    if absent:
        raise RadfordError(f"{path} holds no GPT weights: its checkpoint lacks {', '.join(absent)}")
    return {name: weights.hparams[name] for name in ARCHITECTURE}, weights.state_dict


def _with_defaults(base: type[GPT], **defaults: Any) -> Callable[[type[GPT]], type[GPT]]:
    """Make a GPT subclass whose constructor is ``base``'s with other defaults. The signature says so, since it is
    the recipe schema that jsonargparse reads, and a checkpoint records the subclass's name."""

    def decorate(cls: type[GPT]) -> type[GPT]:
        # Evaluated annotations (types, not the strings `from __future__ import annotations` leaves): jsonargparse
        # checks each value against them, and would evaluate strings in the namespace of the wrapper below, whose own
        # annotations name none of these parameters, and so accept anything (`--model.init_args.n_layer abc`).
        signature = inspect.signature(base.__init__, eval_str=True)
        unknown = defaults.keys() - signature.parameters.keys()
        assert not unknown, f"{cls.__name__} sets defaults for arguments {base.__name__} lacks: {unknown}"

        def __init__(self: GPT, **kwargs: Any) -> None:
            base.__init__(self, **{**defaults, **kwargs})

        __init__.__signature__ = signature.replace(
            parameters=[  # type: ignore[attr-defined]
                p.replace(default=defaults.get(name, p.default)) for name, p in signature.parameters.items()
            ]
        )
        __init__.__annotations__ = {
            name: p.annotation for name, p in signature.parameters.items() if p.annotation is not p.empty
        }
        __init__.__doc__ = base.__init__.__doc__
        cls.__init__ = __init__  # type: ignore[method-assign]
        return cls

    return decorate


@_with_defaults(
    GPT,
    vocab_size=40478,
    block_size=512,
    dropout=0.1,
    post_norm=True,
    learning_rate=2.5e-4,
    min_learning_rate=0.0,
    weight_decay=0.01,
    betas=(0.9, 0.999),
    warmup_steps=2000,
)
class GPT1(GPT):
    """GPT-1 (GPT-1 paper section 4.1): post-norm blocks without a final LayerNorm, 512 positions, BPE with 40,000
    merges (40,478 tokens with the characters), dropout 0.1, Adam at 2.5e-4 warmed up over 2000 updates and
    annealed to 0 on a cosine, L2 0.01 on non-bias, non-gain weights. Betas are those of OpenAI's code. It is GPT
    with these defaults: every argument is GPT's."""
