"""What radford's models share: token sampling and its checks, inference mode, AdamW with the papers' parameter
groups, Muon for a model's weight matrices beside it, the warmup-cosine schedule, length-sorted batches for
``features``, and the steps a training metric is logged on."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import Tensor, nn
from torch.distributed.tensor import DTensor

from radford.errors import RadfordError

IGNORE_INDEX = -100  # the label of a target no loss scores: F.cross_entropy's default ignore_index


def check_sampling(
    input_ids: Tensor,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    unit: str = "token",
) -> None:
    """One-line errors for generation options ``sample`` cannot honour, before anything is generated."""
    if input_ids.dim() != 2 or input_ids.shape[1] == 0:
        raise RadfordError(
            f"input_ids must be (batch, time) with at least one {unit}, got shape {tuple(input_ids.shape)}"
        )
    if max_new_tokens < 0:
        raise RadfordError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if temperature < 0:
        raise RadfordError(f"temperature must be >= 0 (0 is greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise RadfordError(f"top_k must be >= 1 or None, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise RadfordError(f"top_p must be in (0, 1] or None, got {top_p}")


def sample(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One token id per row of next-token logits (batch, vocab); temperature 0 is greedy. Filters apply in
    Hugging Face's order (temperature, top-k, top-p), so seeded runs of the two can be compared."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p is not None:
        # Nucleus sampling (Holtzman et al. 2019): drop a token when the likelier ones already reach top_p,
        # which keeps the smallest set that does and never the empty one.
        sorted_logits, order = logits.sort(-1, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs >= top_p
        logits = logits.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), -math.inf)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


def sampler(
    temperature: float, top_k: int | None, top_p: float | None, generator: torch.Generator | None
) -> partial[Tensor]:
    """``sample`` with its options bound: the ``pick`` a model's generation loop calls on each step's logits."""
    return partial(sample, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)


@contextmanager
def inference(module: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) without autograd, restoring training mode afterwards."""
    training = module.training
    if training:  # switching walks every module: not at every step of a model that is already in eval mode
        module.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        if training:
            module.train()


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Indices of ``lengths`` in batches of similar length, shortest first, so that padding costs little."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def adamw(
    module: nn.Module, learning_rate: float, betas: tuple[float, float], weight_decay: float, eps: float = 1e-8
) -> torch.optim.AdamW:
    """AdamW that decays matrices and embeddings only, not biases or gains (GPT-1 paper section 4.1, CLIP paper
    section 2.5), stepped by the kernel ``adam_kernel`` chooses."""
    return adam(torch.optim.AdamW, module, _decay_groups(module.parameters(), weight_decay), learning_rate, betas, eps)


def adam(
    kind: type[torch.optim.Adam] | type[torch.optim.AdamW],
    module: nn.Module,
    params: Iterable[Any],
    learning_rate: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.Optimizer:
    """``kind`` (Adam or AdamW) over ``params`` (parameters or groups) of ``module``, stepped by the kernel
    ``adam_kernel`` chooses, and still by that kernel after a checkpoint's state is loaded: torch takes the saved
    groups' kernel flags, which a run resumed under another precision must not inherit."""
    params = list(params)
    fused = adam_kernel(module, [p for item in params for p in (item["params"] if isinstance(item, dict) else [item])])
    optimizer = kind(params, lr=learning_rate, betas=betas, eps=eps, fused=fused)

    def keep_kernel(optimizer: torch.optim.Optimizer) -> None:
        for group in optimizer.param_groups:
            group["fused"], group["foreach"] = fused, None

    optimizer.register_load_state_dict_post_hook(keep_kernel)
    return optimizer


def adam_kernel(module: nn.Module, params: Sequence[Tensor]) -> bool | None:
    """True, torch's fused Adam kernel (the whole step in one kernel: on a CPU a small model's optimizer step takes
    a third of the time of torch's default there, a Python loop over the parameters), where it can step ``params``;
    None, torch's default (the multi-tensor kernel on a GPU), where it cannot: sharded (DTensor) parameters, a
    device other than a CPU or a CUDA GPU, or a trainer whose mixed precision refuses to clip a fused optimizer's
    gradients (Lightning's ``MixedPrecision`` does, since a fused kernel unscales them itself), and every paper
    recipe clips."""
    trainer = getattr(module, "_trainer", None)
    if trainer is not None and isinstance(trainer.precision_plugin, MixedPrecision):
        return None
    if any(isinstance(p, DTensor) or p.device.type not in ("cpu", "cuda") for p in params):
        return None
    return True


def _decay_groups(parameters: Iterable[nn.Parameter], weight_decay: float) -> list[dict[str, Any]]:
    params = [p for p in parameters if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


class Optimizers(torch.optim.Optimizer):
    """Several optimizers stepped as one. Lightning's automatic optimisation takes one optimizer per model, and its
    gradient clipping and learning-rate schedulers read and write ``param_groups``: these are the parts' own group
    dicts, so a schedule scales every part's learning rate by the same factor."""

    def __init__(self, *parts: torch.optim.Optimizer) -> None:
        self.parts = parts
        super().__init__([p for part in parts for group in part.param_groups for p in group["params"]], {})
        self.param_groups = [group for part in parts for group in part.param_groups]

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:  # Lightning's closure runs the forward and backward passes: once for all parts
            with torch.enable_grad():
                loss = closure()
        for part in self.parts:
            part.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"parts": [part.state_dict() for part in self.parts]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for part, state in zip(self.parts, state_dict["parts"], strict=True):
            part.load_state_dict(state)
        # Loading replaces each part's group dicts: share the new ones, or a schedule would set rates nobody reads.
        self.param_groups = [group for part in self.parts for group in part.param_groups]


def muon(
    module: nn.Module,
    matrices: Sequence[nn.Parameter],
    muon_learning_rate: float,
    learning_rate: float,
    betas: tuple[float, float],
    weight_decay: float,
    eps: float = 1e-8,
) -> Optimizers:
    """``torch.optim.Muon`` for ``matrices`` (a network's hidden 2-D weights: Muon orthogonalises each update, which
    suits matrices that map one hidden space to another) and ``adamw``'s AdamW for the module's other parameters
    (embeddings, the head, gains, biases), as modded-nanogpt and nanochat train. Muon's learning rate is scaled by
    sqrt(max(1, rows / columns)) per matrix (Keller Jordan's), and it has no weight decay, as in nanochat."""
    chosen = {id(p) for p in matrices}
    rest = [p for p in module.parameters() if id(p) not in chosen]
    return Optimizers(
        torch.optim.Muon([p for p in matrices if p.requires_grad], lr=muon_learning_rate, weight_decay=0.0),
        adam(torch.optim.AdamW, module, _decay_groups(rest, weight_decay), learning_rate, betas, eps),
    )


def warmup_cosine(step: int, warmup_steps: int, decay_steps: float, min_ratio: float) -> float:
    """Learning-rate multiplier: linear up to 1 over warmup_steps, starting above zero as nanoGPT's does (the first
    step trains), cosine down to min_ratio at decay_steps, then constant (GPT-3 paper appendix B; GPT-1 paper
    section 4.1 anneals the same way)."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if step >= decay_steps:
        return min_ratio
    progress = (step - warmup_steps) / (decay_steps - warmup_steps)
    return min_ratio + 0.5 * (1.0 + math.cos(math.pi * progress)) * (1.0 - min_ratio)


def warmup_cosine_schedule(optimizer: torch.optim.Optimizer, model: L.LightningModule) -> dict[str, Any]:
    """Lightning's ``configure_optimizers`` answer for ``optimizer`` under ``warmup_cosine``, read from the model's
    hyperparameters ``learning_rate``, ``min_learning_rate``, ``warmup_steps`` and ``decay_steps`` (None: the
    whole run, as its trainer estimates it)."""
    hparams = model.hparams
    decay_steps = hparams.decay_steps if hparams.decay_steps is not None else model.trainer.estimated_stepping_batches
    schedule = partial(
        warmup_cosine,
        warmup_steps=hparams.warmup_steps,
        decay_steps=decay_steps,
        min_ratio=hparams.min_learning_rate / hparams.learning_rate,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def logging_step(trainer: L.Trainer | None) -> bool:
    """Whether a training step logs its metrics: on the steps the loggers write (``log_every_n_steps``, or when the
    run stops), on the last batch of an epoch, and on the run's last step, so that the bar, the logs and the report
    end on the final values. Not at every step: a ``self.log`` costs about half a millisecond on a CPU (Lightning
    moves its state to the value's device at every call), about 1 % of the baby GPT's step. Lightning's
    ``ThroughputMonitor`` logs on the same steps; Hugging Face's Trainer shows its loss every ``logging_steps``.
    Without a trainer (a step called by hand, or under Fabric) every step logs, and ``self.log`` decides what that
    means, as before."""
    if trainer is None:
        return True
    return (
        trainer._logger_connector.should_update_logs
        or trainer.is_last_batch
        or 0 < trainer.max_steps <= trainer.global_step + 1
        or bool(trainer.fast_dev_run)
    )


__all__ = [
    "IGNORE_INDEX",
    "Optimizers",
    "adam",
    "adam_kernel",
    "adamw",
    "check_sampling",
    "inference",
    "length_sorted_batches",
    "logging_step",
    "muon",
    "sample",
    "sampler",
    "warmup_cosine",
    "warmup_cosine_schedule",
]
