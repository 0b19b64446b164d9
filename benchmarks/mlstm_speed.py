"""Training speed of the sentiment neuron's mLSTM against ``torch.nn.LSTM`` of the same hidden size.

Both are byte-level language models with the same 64-wide embedding and 256-way output layer, trained with Adam on
the same random batch; only the recurrence differs. ``radford.models.mlstm`` computes the input projections for the
whole window at once, keeps only the recurrence in the time loop, and backpropagates through the loop by hand
(``Recurrence``); ``nn.LSTM`` runs oneDNN's fused kernels on CPU (cuDNN's on GPU). The two alternate step by step in
one process, so a busy machine slows both alike; the table gives the median step time of each.

    python benchmarks/mlstm_speed.py                                      # mlstm-tiny's sizes
    python benchmarks/mlstm_speed.py --hidden_size 4096 --batch_size 128 --block_size 256 --device cuda  # paper's
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from radford.models.mlstm import MLSTM


class LSTMModel(nn.Module):
    """The baseline: MLSTM's embedding and output layer around ``torch.nn.LSTM``."""

    def __init__(self, embedding_size: int, hidden_size: int) -> None:
        super().__init__()
        self.embd = nn.Embedding(256, embedding_size)
        self.rnn = nn.LSTM(embedding_size, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(self.embd(x))[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden_size", type=int, default=512)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--block_size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps of each model (after one warm-up)")
    parser.add_argument("--device", default="cpu")
    options = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device(options.device)
    models = {
        "mLSTM (radford)": MLSTM(hidden_size=options.hidden_size),
        "torch.nn.LSTM": LSTMModel(64, options.hidden_size),
    }
    x = torch.randint(0, 256, (options.batch_size, options.block_size + 1), device=device)
    steps = {}
    for name, model in models.items():
        model.to(device).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

        def step(model=model, optimizer=optimizer) -> None:
            logits = model(x[:, :-1])
            logits = logits[0] if isinstance(logits, tuple) else logits  # MLSTM also returns its state
            loss = F.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()

        step()  # warm-up: allocations, kernel selection
        steps[name] = step
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(options.steps):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    params = {name: sum(p.numel() for p in model.parameters()) for name, model in models.items()}
    threads = torch.get_num_threads()
    print(
        f"hidden {options.hidden_size}, batch {options.batch_size} x {options.block_size} bytes, "
        f"{options.steps} steps each, alternating, on {options.device} ({threads} threads)\n"
    )
    print("| model | parameters | s/step (median) | steps/s | bytes/s |")
    print("| --- | --- | --- | --- | --- |")
    for name, seconds in medians.items():
        print(
            f"| {name} | {params[name] / 1e6:.2f} M | {seconds:.3f} | {1 / seconds:.2f} | "
            f"{options.batch_size * options.block_size / seconds:,.0f} |"
        )
    mine, baseline = medians.values()
    print(f"\nmLSTM steps/s / nn.LSTM steps/s = {baseline / mine:.2f}")


if __name__ == "__main__":
    main()
