"""Greedy generation speed: radford's GPT with and without its key/value cache, and with its compiled decode step
over a static cache, against transformers' generate.

All four decode the same random GPT-2 weights (radford's init, converted to ``GPT2LMHeadModel`` with
``state_dict_to_hf``) from the same prompt, greedily, for the same number of new tokens; the script checks that
they produce the same tokens before timing them. Runs alternate radford-cache, radford-no-cache, radford-compiled,
transformers, radford-cache, ... so drift hits all; an untimed run of each warms them up first (and compiles the
decode step). The table gives the median of the repeats and each one's rate relative to transformers.

    python benchmarks/generation.py                                   # GPT-2 small (124M): 64-token prompt, 128 new
    python benchmarks/generation.py --n_layer 6 --n_embd 384 --n_head 6   # a smaller model for a quick look
    python benchmarks/generation.py --device cuda --batch_size 8
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from radford.models.gpt import GPT
from radford.models.gpt_adapter import state_dict_to_hf


def build(args: argparse.Namespace) -> tuple[GPT, GPT2LMHeadModel]:
    """radford's GPT with its own random init, and the same weights in transformers' GPT-2."""
    torch.manual_seed(0)
    model = GPT(
        vocab_size=args.vocab_size,
        block_size=args.block_size,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
    )
    config = GPT2Config(
        vocab_size=args.vocab_size,
        n_positions=args.block_size,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
    )
    hf = GPT2LMHeadModel(config)
    result = hf.load_state_dict(state_dict_to_hf(model.state_dict()), strict=False)
    assert not result.unexpected_keys and all(".attn." in key for key in result.missing_keys), result
    return model.to(args.device).eval(), hf.to(args.device).eval()


def decoders(model: GPT, hf: GPT2LMHeadModel) -> dict[str, Callable[[torch.Tensor, int], torch.Tensor]]:
    """Each way of decoding greedily: (prompt, new tokens) -> new token ids (batch, new tokens)."""

    def radford(use_cache: bool, compiled: bool = False) -> Callable[[torch.Tensor, int], torch.Tensor]:
        return lambda prompt, n: torch.stack(
            list(model.generate(prompt, n, temperature=0, use_cache=use_cache, compiled=compiled)), 1
        )

    def transformers(prompt: torch.Tensor, n: int) -> torch.Tensor:
        # No end-of-text token: every run generates exactly n tokens, as radford's do.
        out = hf.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            do_sample=False,
            max_new_tokens=n,
            use_cache=True,
            pad_token_id=0,
            eos_token_id=None,
        )
        return out[:, prompt.shape[1] :]

    return {
        "radford, cache": radford(True),
        "radford, no cache": radford(False),
        "radford, compiled": radford(True, compiled=True),
        "transformers, cache": transformers,
    }


def timed(decode: Callable[[torch.Tensor, int], torch.Tensor], prompt: torch.Tensor, n: int) -> float:
    """Seconds for one decode, device work included."""
    sync = torch.cuda.synchronize if prompt.is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    decode(prompt, n)
    sync()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n_layer", type=int, default=12)
    parser.add_argument("--n_head", type=int, default=12)
    parser.add_argument("--n_embd", type=int, default=768)
    parser.add_argument("--vocab_size", type=int, default=50257)
    parser.add_argument("--block_size", type=int, default=1024)
    parser.add_argument("--prompt_length", type=int, default=64)
    parser.add_argument("--new_tokens", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each, alternating")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.prompt_length + args.new_tokens > args.block_size:
        parser.error("prompt_length + new_tokens must fit in block_size: transformers' GPT-2 cannot slide its window")

    model, hf = build(args)
    prompt = torch.randint(
        args.vocab_size, (args.batch_size, args.prompt_length), generator=torch.Generator().manual_seed(0)
    ).to(args.device)
    ways = decoders(model, hf)
    with torch.inference_mode():
        outputs = {name: decode(prompt, args.new_tokens) for name, decode in ways.items()}  # also the warm-up
    reference = outputs["transformers, cache"]
    agree = {name: (out == reference).float().mean().item() for name, out in outputs.items()}

    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.repeats):
        for name, decode in ways.items():
            with torch.inference_mode():
                seconds[name].append(timed(decode, prompt, args.new_tokens))

    params = sum(p.numel() for p in model.parameters()) / 1e6
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(
        f"GPT-2 {args.n_layer} layers x {args.n_embd} wide, {params:.0f}M parameters; batch {args.batch_size}, "
        f"prompt {args.prompt_length}, {args.new_tokens} new tokens, greedy, fp32, {args.repeats} runs each"
    )
    print(
        f"{device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.2f} (1 min)"
    )
    baseline = statistics.median(seconds["transformers, cache"])
    print(f"{'':<20} {'tokens/s':>10} {'median s':>10} {'vs transformers':>16} {'same tokens':>12}")
    for name, runs in seconds.items():
        median = statistics.median(runs)
        rate = args.batch_size * args.new_tokens / median
        print(f"{name:<20} {rate:>10.1f} {median:>10.3f} {baseline / median:>15.2f}x {agree[name]:>11.0%}")


if __name__ == "__main__":
    main()
