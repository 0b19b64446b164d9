"""How fast a run goes, and the switches that change it.

- ``SpeedMonitor``: tokens/s (images/s, bytes/s) and model-FLOPs utilisation in every run, in the progress bar and
  the logs. Built on Lightning's ``lightning.fabric.utilities.throughput.Throughput`` (the rolling window behind
  its ``ThroughputMonitor``). A model's FLOPs per training step are its own ``training_flops(batch)`` where it
  has one (GPT: 6N + attention, PaLM appendix B), else counted by ``torch.utils.flop_counter`` on a copy of the
  model on the meta device, which computes nothing. The peak is Lightning's table for GPUs and a measured matmul
  for CPUs (no table knows a CPU's) and for GPUs the table lacks.
- ``Compile``: ``torch.compile`` of the model's compute-heavy modules, in place, so that parameter names and
  checkpoints are unchanged (``recipes/compile.yaml``).
- ``ThreadBudget`` / ``thread_budget``: intra-op threads such that processes x (threads + loader workers) never
  exceeds the cores.
- ``check_precision``: a precision the device cannot use (float16 on a CPU) is one line naming those it can.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.throughput import Throughput, get_available_flops
from lightning.pytorch.accelerators import CPUAccelerator, CUDAAccelerator, MPSAccelerator, XLAAccelerator
from torch import Tensor, nn
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from radford.errors import RadfordError
from radford.models.common import logging_step

log = logging.getLogger(__name__)
aten = torch.ops.aten

# The dtype the matmuls of a run compute in, by Lightning's precision name (``trainer.precision``).
COMPUTE_DTYPES = {"bf16": torch.bfloat16, "16": torch.float16, "64": torch.float64}


def gpt_flops_per_token(parameters: int, n_layer: int, n_embd: int, context: int) -> int:
    """Training FLOPs per token of a decoder-only transformer (PaLM appendix B): 6 per weight (2 forward, 4
    backward) over the ``parameters`` that multiply each token (not the position table), plus attention's scores
    and weighted sums, 12 * n_layer * n_embd * context."""
    return 6 * parameters + 12 * n_layer * n_embd * context


def flop_count(step: Callable[[], Any]) -> int:
    """The FLOPs ``step()`` asks for (matmuls, convolutions, attention), counted by ``torch.utils.flop_counter``,
    which knows the GPU attention kernels but not the CPU's: they are counted here as the GPU's are."""
    counter = FlopCounterMode(
        display=False,
        custom_mapping={
            aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention,
            aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward,
        },
    )
    with counter:
        step()
    return counter.get_total_flops()


def _cpu_attention(query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
    return flop_counter.sdpa_flop_count(query, key, value)  # shapes: FlopCounterMode passes shapes, not tensors


def _cpu_attention_backward(grad: Any, query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
    # Model FLOPs, as MFU counts them (PaLM appendix B): twice the forward's, without the kernel's recomputation of
    # the scores; what the meta device's decomposition of attention counts too.
    return 2 * flop_counter.sdpa_flop_count(query, key, value)


def on_meta(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with its parameters on the meta device (shapes, no storage, nothing computed), rebuilt
    from its recorded hyperparameters as ``radford.load`` rebuilds a checkpoint's model."""
    accepted = inspect.signature(type(module).__init__).parameters
    arguments = {k: v for k, v in getattr(module, "hparams", {}).items() if k in accepted}
    with torch.device("meta"):
        return type(module)(**arguments)


def _tensors(value: Any) -> Iterator[Tensor]:
    """The tensors of a batch, in order: a tensor, or tuples, lists and dicts of them."""
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (tuple, list, Mapping)):
        for item in value.values() if isinstance(value, Mapping) else value:
            yield from _tensors(item)


def training_flops(module: nn.Module, batch: Any) -> int | None:
    """Model FLOPs of one training step on ``batch`` (forward and backward; the optimizer's elementwise work is not
    model FLOPs): the module's ``training_flops(batch)`` if it has one, else forward and backward of
    ``module(*batch)`` counted on a meta copy (CLIP's forward takes its batch so). None when neither works."""
    own = getattr(module, "training_flops", None)
    try:
        if callable(own):
            return int(own(batch))
        twin = on_meta(module)
        inputs = [t.to("meta") for t in _tensors(batch)]

        def step() -> None:
            outputs = [t for t in _tensors(twin(*inputs)) if t.requires_grad]
            sum(t.float().sum() for t in outputs).backward()

        return flop_count(step)
    except Exception as error:  # a model this cannot run still trains; its MFU is not shown
        log.info("no FLOPs count for %s (%s): MFU not shown", type(module).__name__, error)
        return None


@lru_cache
def matmul_peak(device: str = "cpu", dtype: torch.dtype = torch.float32, threads: int | None = None) -> float:
    """The best FLOP/s of a large square matmul on ``device`` in ``dtype`` (at ``threads`` intra-op threads on a
    CPU: the count in force): the peak MFU is measured against where no table knows the device. Cached per
    device, dtype and thread count; under half a second on one CPU core. On a CPU other jobs are using it reads
    low, and MFU high."""
    del threads  # a cache key: a CPU's peak depends on the thread count in force
    size = 1024 if device == "cpu" else 8192
    a, b = (torch.randn(size, size, dtype=dtype, device=device) for _ in range(2))
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    a @ b  # first call: allocation and kernel selection
    best = float("inf")
    for _ in range(8):
        sync()
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype matmuls run in under a Lightning precision (``bf16-mixed``: bfloat16; ``32-true``: float32)."""
    return COMPUTE_DTYPES.get(str(precision).split("-")[0], torch.float32)


def peak_flops(device: torch.device, dtype: torch.dtype) -> float | None:
    """A device's peak FLOP/s in ``dtype``: Lightning's table for GPUs, else (a CPU, a GPU it does not list) a
    measured matmul."""
    listed = get_available_flops(device, dtype) if device.type == "cuda" else None
    return listed or matmul_peak(str(device), dtype, torch.get_num_threads())


def throughput_unit(module: nn.Module, batch: Any) -> tuple[str, Callable[[Any], int]]:
    """What a run's rate counts, and how many of it a batch holds: the module's ``throughput_unit`` if it names one
    (the mLSTM's ``bytes``), else tokens for integer batches (every id of the input) and images for the rest (one
    per row of the first tensor: an image, or an image-caption pair)."""
    first = next(_tensors(batch))
    integer = not first.is_floating_point()
    unit = getattr(module, "throughput_unit", None) or ("tokens" if integer else "images")
    if integer:
        return unit, lambda b: next(_tensors(b)).numel()
    return unit, lambda b: next(_tensors(b)).shape[0]


class SpeedMonitor(L.Callback):
    """Logs ``<unit>_per_sec`` (tokens, images or bytes a second, over every process) and ``mfu`` (model FLOPs a
    second over the device's peak) while training, over a rolling window of ``window`` batches, to the progress bar
    and the loggers, every ``log_every_n_steps``. Time spent validating is left out. On a GPU the clock is the
    host's, with no device sync: the queue of launched kernels keeps the host at most a few steps ahead, a small
    error over a window.

    Args:
        window: batches the rates are averaged over; no figure is shown before the first window is full.
        peak_flops: the device's peak FLOP/s, if known better than Lightning's GPU table or the measured CPU matmul.
    """

    def __init__(self, window: int = 20, peak_flops: float | None = None) -> None:
        if window < 2:
            raise RadfordError(f"SpeedMonitor window must be at least 2 batches, got {window}")
        self.window = window
        self.peak = peak_flops
        self.figures: dict[str, float] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After the strategy's set-up: the device is the run's and the threads are those the run computes with.
        if self.peak is None:
            self.peak = peak_flops(trainer.strategy.root_device, compute_dtype(trainer.precision))
        self.throughput = Throughput(available_flops=self.peak, world_size=trainer.world_size, window_size=self.window)
        self.unit: str | None = None
        self.flops_per_batch: int | None = None
        self.batches = self.samples = self.items = 0
        self.paused = 0.0
        self.figures = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.t0 = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        elapsed = time.perf_counter() - self.t0 - self.paused
        if self.unit is None:
            if next(_tensors(batch), None) is None:  # a batch of other things: nothing to count, for this run
                self.unit = ""
                return
            self.unit, self.count = throughput_unit(pl_module, batch)
            self.flops_per_batch = training_flops(pl_module, batch)
        if not self.unit:
            return
        self.batches += 1
        self.samples += next(_tensors(batch)).shape[0]
        self.items += self.count(batch)
        self.throughput.update(
            time=elapsed, batches=self.batches, samples=self.samples, lengths=self.items, flops=self.flops_per_batch
        )
        if not logging_step(trainer):  # the steps the models log their losses on
            return
        metrics = self.throughput.compute()
        if "device/items_per_sec" not in metrics:
            return
        self.figures = {f"{self.unit}_per_sec": metrics["device/items_per_sec"] * trainer.world_size}
        if "device/mfu" in metrics:
            self.figures["mfu"] = metrics["device/mfu"]
        for name, value in self.figures.items():
            pl_module.log(name, value, prog_bar=True, batch_size=1)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._validation_start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and hasattr(self, "t0"):
            self.paused += time.perf_counter() - self._validation_start


# -- torch.compile --------------------------------------------------------------------------------------------------


def _own(module: nn.Module) -> bool:
    """A model's own composite module (a ViT, a generator), not a torch layer, container or torchmetrics metric."""
    return type(module).__module__.split(".")[0] not in ("torch", "torchmetrics")


def compile_units(module: nn.Module) -> list[nn.Module]:
    """The modules ``Compile`` compiles: the model's ``compile_units()`` if it has them (GPT: each block, compiled
    once for all, as FSDP shards them), else its direct children that are its own modules (CLIP's image and text
    towers, DCGAN's generator and discriminator)."""
    units = getattr(module, "compile_units", None)
    return list(units()) if callable(units) else [child for child in module.children() if _own(child)]


class Compile(L.Callback):
    """``torch.compile`` the model's compute-heavy modules (``compile_units``) when fitting starts, in place
    (``nn.Module.compile``): parameter names stay as they were, so a compiled run's checkpoints load uncompiled
    and back, with no ``_orig_mod.`` anywhere. Compiling happens after the strategy has wrapped or sharded the
    model, and at the first step, which is slower by the compile time.

    Args:
        backend: ``torch.compile``'s backend: ``inductor`` (generated kernels; needs a C++ compiler on CPU), or
            ``aot_eager`` to check tracing without one.
        mode: ``torch.compile``'s mode (``max-autotune``, ``reduce-overhead``), or None for its default.
        dynamic: compile for varying shapes (None: only once a shape has changed).
    """

    def __init__(self, backend: str = "inductor", mode: str | None = None, dynamic: bool | None = None) -> None:
        self.backend, self.mode, self.dynamic = backend, mode, dynamic

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        units = compile_units(pl_module)
        if not units:
            raise RadfordError(
                f"Compile: {type(pl_module).__name__} has no modules to compile (define compile_units() to name them)"
            )
        for unit in units:
            unit.compile(backend=self.backend, mode=self.mode, dynamic=self.dynamic)


# -- precision ---------------------------------------------------------------------------------------------------

# Precisions a CPU does not run usefully, and why. float16 there is emulated, and loss scaling, what 16-mixed adds,
# only makes up for float16's range (bfloat16 has float32's); Lightning swaps 16-mixed for bf16-mixed on a CPU with a
# warning that scrolls away, and a recipe that asks for it should hear so. Transformer Engine is NVIDIA's GPU library.
FLOAT16 = "float16 on a CPU is emulated"
CPU_REFUSED = {
    "16-mixed": FLOAT16,
    "16-true": FLOAT16,
    "16": FLOAT16,  # Lightning's alias of 16-mixed (``precision: 16`` in a recipe)
    "transformer-engine": "Transformer Engine runs on NVIDIA GPUs",
    "transformer-engine-float16": "Transformer Engine runs on NVIDIA GPUs",
}
# Lightning's precision names, those a CPU runs first (its aliases 32, 16, bf16 and 64 left out: they name these).
PRECISIONS = (
    "32-true",
    "bf16-mixed",
    "bf16-true",
    "64-true",
    "16-mixed",
    "16-true",
    "transformer-engine",
    "transformer-engine-float16",
)


def precisions(device: torch.device | str) -> list[str]:
    """The precisions a run on ``device`` can use: on a CPU, those without float16 or Transformer Engine."""
    if torch.device(device).type == "cpu":
        return [name for name in PRECISIONS if name not in CPU_REFUSED]
    return list(PRECISIONS)


def check_precision(precision: Any, device: torch.device | str | None) -> None:
    """One line, naming the valid choices, for a precision the run's device cannot use to any purpose: float16 on a
    CPU. ``precision`` is the one asked for (the recipe's ``trainer.precision``), ``device`` the one the trainer
    computes on (``trainer_device``; None, not known: nothing is checked)."""
    if device is None or torch.device(device).type != "cpu" or str(precision) not in CPU_REFUSED:
        return
    raise RadfordError(
        f"precision {precision} needs a GPU ({CPU_REFUSED[str(precision)]}); valid on this machine (CPU): "
        f"{', '.join(precisions('cpu'))} (--recipe precision/bf16-mixed for mixed precision)"
    )


def trainer_device(accelerator: Any = "auto") -> torch.device | None:
    """The device type a Trainer given ``accelerator`` computes on, found before it is built (building it is what
    would swap 16-mixed for bf16-mixed): ``auto`` chooses as Lightning does (TPU, then Apple's MPS, then CUDA, then
    the CPU), ``gpu`` as MPS or CUDA. None where it cannot tell (another Accelerator, a GPU that is not there: the
    Trainer then says why)."""
    if isinstance(accelerator, CPUAccelerator):
        return torch.device("cpu")
    if not isinstance(accelerator, str):
        return None
    available = {"xla": XLAAccelerator, "mps": MPSAccelerator, "cuda": CUDAAccelerator}
    if accelerator in ("auto", "gpu"):
        choices = ["xla", "mps", "cuda"] if accelerator == "auto" else ["mps", "cuda"]
        found = next((kind for kind in choices if available[kind].is_available()), None)
        return torch.device(found or "cpu") if accelerator == "auto" or found else None
    kind = {"tpu": "xla"}.get(accelerator, accelerator)
    return torch.device(kind) if kind in ("cpu", *available) else None


# -- threads -----------------------------------------------------------------------------------------------------


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, which containers and SLURM set), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def thread_budget(processes: int = 1, workers: int = 0, cores: int | None = None) -> int:
    """Intra-op threads for each of ``processes`` training processes on this machine, each fed by ``workers``
    data-loader processes (one thread each: PyTorch's workers run single-threaded), such that
    processes x (threads + workers) <= cores; at least 1."""
    cores = available_cores() if cores is None else cores
    return max(1, cores // max(1, processes) - workers)


class ThreadBudget(L.Callback):
    """Lowers this process's intra-op threads to ``thread_budget`` for the run's processes on this machine and its
    loader workers (the data module's ``num_workers``). It never raises them: a smaller ``OMP_NUM_THREADS`` stays.
    Runs in every process, after Lightning's launcher has split the cores among processes (it does not count the
    loader workers)."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        workers = getattr(trainer.datamodule, "num_workers", 0) or 0
        budget = thread_budget(trainer.num_devices, workers)
        if torch.get_num_threads() > budget:
            torch.set_num_threads(budget)


__all__ = [
    "Compile",
    "SpeedMonitor",
    "ThreadBudget",
    "check_precision",
    "compile_units",
    "compute_dtype",
    "matmul_peak",
    "flop_count",
    "gpt_flops_per_token",
    "on_meta",
    "peak_flops",
    "precisions",
    "thread_budget",
    "throughput_unit",
    "trainer_device",
    "training_flops",
]
