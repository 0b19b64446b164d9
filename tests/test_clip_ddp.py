"""CLIP's distributed loss: two CPU processes under DDP (gloo), each with half of a global batch, get the loss and the
gradients one process gets on the whole batch, in both the full and the memory-saving local form."""

from __future__ import annotations

import gc
import os
import socket
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from radford.models.clip import CLIP
from tests.cores import all_cores

WORLD = 2
GLOBAL_BATCH = 8


class LossOf(nn.Module):
    """DDP synchronises gradients of what its forward computes: here the contrastive loss."""

    def __init__(self, model: CLIP) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return self.model.loss((pixels, ids))[0]


def setup(local_loss: bool) -> tuple[CLIP, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = CLIP("ViT-tiny", vocab_size=50, vision_layers=1, text_layers=1, local_loss=local_loss)
    pixels = torch.randn(GLOBAL_BATCH, 3, 48, 48)
    ids = torch.randint(1, 48, (GLOBAL_BATCH, 20))
    ids[torch.arange(GLOBAL_BATCH), torch.randint(1, 20, (GLOBAL_BATCH,))] = 49
    return model, pixels, ids


def worker(rank: int, port: int, out: Path) -> None:
    torch.set_num_threads(1)
    # A timeout, so that a process left alone fails the test instead of hanging it.
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60)
    )
    try:
        for local_loss in (False, True):
            model, pixels, ids = setup(local_loss)
            ddp = nn.parallel.DistributedDataParallel(LossOf(model))
            rows = slice(rank * GLOBAL_BATCH // WORLD, (rank + 1) * GLOBAL_BATCH // WORLD)
            loss = ddp(pixels[rows], ids[rows])
            loss.backward()
            grads = {name: p.grad for name, p in model.named_parameters()}
            torch.save({"loss": loss.detach(), "grads": grads}, out / f"{local_loss}-{rank}.pt")
            # DDP's reducer goes while the process group lives: freed after it, the reducer's release of the group
            # joins gloo's threads while holding the GIL that they wait for (a hang at exit, seen on 2 cores).
            del ddp, loss
            gc.collect()
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    """Both forms' losses and gradients from two processes (started once: starting them takes most of the time)."""
    out = tmp_path_factory.mktemp("ddp")
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    with all_cores(tmp_path_factory):  # two processes at once
        processes = mp.start_processes(worker, args=(free_port(), out), nprocs=WORLD, join=False)
        deadline = time.monotonic() + 300
        while not processes.join(timeout=5):  # raises if a process failed
            if time.monotonic() > deadline:
                for process in processes.processes:
                    process.kill()
                pytest.fail("the two DDP processes did not finish in 300 s")
    return out


@pytest.mark.parametrize("local_loss", [False, True], ids=["global", "local"])
def test_two_processes_equal_one(local_loss, two_processes):
    ranks = [torch.load(two_processes / f"{local_loss}-{r}.pt", weights_only=True) for r in range(WORLD)]

    model, pixels, ids = setup(local_loss)
    loss = model.loss((pixels, ids))[0]
    loss.backward()

    # The full form computes the global loss on every process; the local one each process's share, which average.
    losses = torch.stack([r["loss"] for r in ranks])
    if not local_loss:
        torch.testing.assert_close(losses[0], losses[1])
    torch.testing.assert_close(losses.mean(), loss.detach(), atol=1e-5, rtol=1e-5)
    for name, param in model.named_parameters():
        for r in ranks:  # DDP leaves every process with the same, averaged gradients
            torch.testing.assert_close(r["grads"][name], param.grad, atol=1e-5, rtol=1e-4, msg=name)
