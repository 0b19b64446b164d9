"""GPT-2: a decoder-only transformer language model (Radford et al. 2019, "Language Models are
Unsupervised Multitask Learners"), written to load OpenAI's released weights through Hugging Face's
``GPT2LMHeadModel`` layout.

The blocks follow GPT-2 paper section 2.3 and OpenAI's ``gpt-2/src/model.py``; the optimizer and learning-rate
schedule follow GPT-3 paper appendix B, since the GPT-2 paper does not state its own.
"""

from __future__ import annotations

import math
import time
from functools import partial

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric

from radford.errors import RadfordError

# HF's GPT-2 uses Conv1D, which stores a Linear weight transposed: (in_features, out_features).
HF_TRANSPOSED = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")
# Causal-mask buffers in older HF checkpoints; scaled_dot_product_attention builds its own mask.
HF_BUFFERS = (".attn.bias", ".attn.masked_bias")
# OpenAI's checkpoints on the hub are saved from GPT2Model, whose keys lack this prefix and lm_head.
HF_PREFIX = "transformer."


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

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = (z.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for z in self.c_attn(x).split(C, 2))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))


class MLP(nn.Module):
    """Position-wise feed-forward network with a 4x wider hidden layer (GPT-1 paper section 4.1)."""

    def __init__(self, n_embd: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        # The tanh approximation of GELU, as OpenAI's code computes it; the weights were trained with it.
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Transformer block with LayerNorm at the input of each sub-block, as in GPT-2 paper section 2.3."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, eps=1e-5, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = nn.LayerNorm(n_embd, eps=1e-5, bias=bias)
        self.mlp = MLP(n_embd, dropout, bias)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Perplexity(MeanMetric):
    """exp of the token-weighted mean cross-entropy: the perplexity of a whole split, not a mean of batches'."""

    def compute(self) -> Tensor:
        return super().compute().exp()


def warmup_cosine(step: int, warmup_steps: int, decay_steps: float, min_ratio: float) -> float:
    """Learning-rate multiplier: linear from 0 to 1 over warmup_steps, cosine down to min_ratio at
    decay_steps, then constant (GPT-3 paper appendix B; GPT-1 paper section 4.1 anneals the same way)."""
    if step < warmup_steps:
        return step / warmup_steps
    if step >= decay_steps:
        return min_ratio
    progress = (step - warmup_steps) / (decay_steps - warmup_steps)
    return min_ratio + 0.5 * (1.0 + math.cos(math.pi * progress)) * (1.0 - min_ratio)


class GPT(L.LightningModule):
    """GPT-2 language model. Defaults are GPT-2 small (124M); a batch is (input ids, next-token ids)."""

    def __init__(
        self,
        vocab_size: int = 50257,
        block_size: int = 1024,
        n_layer: int = 12,
        n_head: int = 12,
        n_embd: int = 768,
        dropout: float = 0.0,
        bias: bool = True,
        learning_rate: float = 6e-4,
        min_learning_rate: float = 6e-5,
        weight_decay: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.95),
        warmup_steps: int = 100,
        decay_steps: int | None = None,
    ):
        super().__init__()
        sizes = {"vocab_size": vocab_size, "block_size": block_size, "n_layer": n_layer, "n_head": n_head,
                 "n_embd": n_embd}
        for name, size in sizes.items():
            if size <= 0:
                raise RadfordError(f"{name} must be positive, got {size}")
        if not 0.0 <= dropout < 1.0:
            raise RadfordError(f"dropout must be in [0, 1), got {dropout}")
        self.save_hyperparameters()

        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(vocab_size, n_embd),
                # Learned positions rather than sinusoids, as in GPT-1 paper section 4.1.
                wpe=nn.Embedding(block_size, n_embd),
                drop=nn.Dropout(dropout),
                h=nn.ModuleList(Block(n_embd, n_head, dropout, bias) for _ in range(n_layer)),
                # GPT-2 paper section 2.3: a final LayerNorm, since pre-LN blocks leave the residual unnormalised.
                ln_f=nn.LayerNorm(n_embd, eps=1e-5, bias=bias),
            )
        )
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        # The output projection is the token embedding, as in OpenAI's code (logits = h @ wte.T).
        self.transformer.wte.weight = self.lm_head.weight

        self.apply(self._init_weights)
        # GPT-2 paper section 2.3 scales residual layers by 1/sqrt(N), N residual layers: two per block.
        for name, param in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

        self.eval_loss = nn.ModuleDict({"val": MeanMetric(), "test": MeanMetric()})
        self.eval_ppl = nn.ModuleDict({"val": Perplexity(), "test": Perplexity()})
        self._last_step_time: float | None = None

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # N(0, 0.02) suffices because LayerNorm is used throughout (GPT-1 paper section 4.1).
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Parameter count; non_embedding leaves out positions (token embeddings count: they are lm_head)."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wpe.weight.numel() if non_embedding else n

    def forward(self, input_ids: Tensor) -> Tensor:
        """Next-token logits (batch, time, vocab) for token ids (batch, time)."""
        t = input_ids.shape[1]
        if t > self.hparams.block_size:
            raise RadfordError(f"input length {t} exceeds block_size {self.hparams.block_size}")
        pos = torch.arange(t, device=input_ids.device)
        x = self.transformer.drop(self.transformer.wte(input_ids) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))

    def loss(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        """Mean next-token cross-entropy over every position of the batch."""
        x, y = batch
        return F.cross_entropy(self(x).flatten(0, 1), y.flatten())

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self.loss(batch)
        self.log("train_loss", loss, prog_bar=True)
        # Wall time from one step to the next includes data loading and the optimizer: the rate a run sees.
        # No device sync: the queue of launched kernels keeps the host at most a few steps ahead.
        now = time.perf_counter()
        if self._last_step_time is not None:
            tokens = batch[1].numel() * self.trainer.world_size
            self.log("tokens_per_sec", tokens / (now - self._last_step_time))
        self._last_step_time = now
        return loss

    def on_validation_start(self) -> None:
        # Time spent validating is not training throughput.
        self._last_step_time = None

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: tuple[Tensor, Tensor], split: str) -> None:
        loss, tokens = self.loss(batch), batch[1].numel()
        self.eval_loss[split].update(loss, weight=tokens)
        self.eval_ppl[split].update(loss, weight=tokens)
        # The metrics sum across processes themselves when computed at the end of the split (torchmetrics),
        # so every token of the split weighs the same wherever it ran.
        self.log(f"{split}_loss", self.eval_loss[split])
        self.log(f"{split}_ppl", self.eval_ppl[split])

    def configure_optimizers(self):
        hp = self.hparams
        # Decay matrices and embeddings only, not biases or LayerNorm gains (GPT-1 paper section 4.1).
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": hp.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        # One fused kernel per step where torch has it; elsewhere torch picks its foreach kernels.
        fused = self.device.type in ("cuda", "cpu")
        optimizer = torch.optim.AdamW(groups, lr=hp.learning_rate, betas=hp.betas, fused=fused)
        decay_steps = hp.decay_steps if hp.decay_steps is not None else self.trainer.estimated_stepping_batches
        schedule = partial(warmup_cosine, warmup_steps=hp.warmup_steps, decay_steps=decay_steps,
                           min_ratio=hp.min_learning_rate / hp.learning_rate)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def state_dict_from_hf(hf_sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """GPT's state dict from a Hugging Face GPT2LMHeadModel or GPT2Model one (OpenAI's released weights)."""
    sd = {}
    for key, value in hf_sd.items():
        if key.endswith(HF_BUFFERS):
            continue
        key = key if key.startswith((HF_PREFIX, "lm_head.")) else HF_PREFIX + key
        sd[key] = value.t().contiguous() if key.endswith(HF_TRANSPOSED) else value
    # lm_head is tied to the token embedding and absent from GPT2Model checkpoints.
    sd["lm_head.weight"] = sd[HF_PREFIX + "wte.weight"]
    return sd


def state_dict_to_hf(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """A Hugging Face GPT2LMHeadModel state dict from GPT's; lm_head.weight stays tied to wte."""
    return {key: value.t().contiguous() if key.endswith(HF_TRANSPOSED) else value for key, value in sd.items()}
