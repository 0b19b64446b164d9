"""``radford generate``: continue a prompt with a trained model, streaming the text as it is sampled."""

from __future__ import annotations

import inspect
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from radford.cli import ArgumentParser
from radford.errors import RadfordError

if TYPE_CHECKING:
    from radford.tokenizers import Tokenizer

# What a byte-level BPE decodes an incomplete UTF-8 sequence to (a character split across tokens).
REPLACEMENT_CHARACTER = "\ufffd"


def decode_stream(tokenizer: Tokenizer, prompt_ids: Sequence[int], new_ids: Iterable[int]) -> Iterator[str]:
    """The text of ``new_ids`` in pieces as they arrive, decoded after the prompt so that spacing is right.

    A character whose UTF-8 bytes span several tokens decodes as U+FFFD until its last byte arrives, so text
    ending in one waits for the next token; the end of the stream releases whatever is left.
    """
    ids = list(prompt_ids)
    text = tokenizer.decode(ids)
    shown = len(text)
    for new_id in new_ids:
        ids.append(new_id)
        text = tokenizer.decode(ids)
        if len(text) > shown and not text.endswith(REPLACEMENT_CHARACTER):
            yield text[shown:]
            shown = len(text)
    if len(text) > shown:
        yield text[shown:]


def parse_fixed_unit(text: str) -> tuple[int, float]:
    """``INDEX=VALUE`` (``--fix_unit 2388=1.0``) as (index, value)."""
    index, _, value = text.partition("=")
    try:
        return int(index), float(value)
    except ValueError:
        raise RadfordError(
            f"--fix_unit takes INDEX=VALUE (an integer and a number, as 2388=1.0), got {text!r}"
        ) from None


def main(args: Sequence[str]) -> None:
    """Continue a prompt with a trained model (.ckpt or Hugging Face folder), printing text as it comes."""
    parser = ArgumentParser(prog="radford generate", description=main.__doc__)
    parser.add_argument("--checkpoint", required=True, help="a radford .ckpt, or a Hugging Face GPT-2/GPT-1 folder")
    parser.add_argument("--prompt", required=True, help="the text to continue ('' starts from <|endoftext|>)")
    parser.add_argument("--max_new_tokens", type=int, default=100)
    parser.add_argument("--temperature", type=float, default=1.0, help="0 always takes the likeliest token")
    parser.add_argument("--top_k", type=int, help="sample among the k likeliest tokens only")
    parser.add_argument("--top_p", type=float, help="sample among the likeliest tokens whose probability reaches p")
    parser.add_argument("--seed", type=int, help="the same seed gives the same samples")
    parser.add_argument("--num_samples", type=int, default=1, help="continuations, separated by a line ---")
    parser.add_argument("--no_cache", action="store_true", help="recompute the whole context at every step")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="decode each token after the prompt with a compiled step over a static cache (torch.compile; on a CPU "
        "it needs a C++ compiler); the first sample waits while it compiles",
    )
    parser.add_argument(
        "--fix_unit",
        action="append",
        default=[],
        metavar="INDEX=VALUE",
        help="hold a cell unit of an mLSTM at VALUE while sampling (repeatable): sentiment steering",
    )
    options = parser.parse_args(args)
    if options.num_samples < 1:
        raise RadfordError(f"--num_samples must be at least 1, got {options.num_samples}")
    if options.compile and options.no_cache:
        raise RadfordError("--compile compiles the step that reads the cache: it does not combine with --no_cache")

    import torch

    from radford.checkpoints import load

    model = load(options.checkpoint)
    if model.tokenizer is None:
        raise RadfordError(
            f"{options.checkpoint} has no tokenizer to encode the prompt with: a .ckpt records its "
            "data module's, a Hugging Face folder needs tokenizer.json or vocab.json + merges.txt"
        )
    if not callable(getattr(model, "generate", None)):
        raise RadfordError(f"{options.checkpoint} holds a {type(model).__name__}, which does not generate text")
    # Options that only some models take, by the name of their generate() argument; the defaults are left out.
    extra = {"use_cache": False} if options.no_cache else {}
    if options.compile:
        extra["compiled"] = True  # GPT's compiled_decode_step: compiled once, on the first sample
    if options.fix_unit:
        extra["fix_units"] = dict(map(parse_fixed_unit, options.fix_unit))
    accepted = inspect.signature(model.generate).parameters
    for flag, name in (("--no_cache", "use_cache"), ("--compile", "compiled"), ("--fix_unit", "fix_units")):
        if name in extra and name not in accepted:
            raise RadfordError(f"{flag} does not apply to {options.checkpoint}, a {type(model).__name__}")
    tokenizer = model.tokenizer
    # An empty prompt starts a new document, as GPT-2's unconditional samples do.
    prompt_ids = tokenizer.encode(options.prompt) or ([] if tokenizer.eot_id is None else [tokenizer.eot_id])
    if not prompt_ids:
        raise RadfordError("--prompt is empty and the tokenizer has no end-of-text token to start from")
    generator = None if options.seed is None else torch.Generator().manual_seed(options.seed)
    start = time.perf_counter()
    for sample in range(options.num_samples):
        # Called before anything is printed: it checks the sampling options.
        steps = model.generate(
            torch.tensor([prompt_ids]),
            options.max_new_tokens,
            temperature=options.temperature,
            top_k=options.top_k,
            top_p=options.top_p,
            generator=generator,
            **extra,
        )
        if sample:
            print("---")
        print(options.prompt, end="", flush=True)
        for piece in decode_stream(tokenizer, prompt_ids, (int(step[0]) for step in steps)):
            print(piece, end="", flush=True)
        print()
    elapsed = time.perf_counter() - start
    tokens = options.num_samples * options.max_new_tokens
    compiling = " (compiling included)" if options.compile else ""
    print(f"{tokens} tokens in {elapsed:.2f} s{compiling}: {tokens / elapsed:.1f} tokens/s", file=sys.stderr)
