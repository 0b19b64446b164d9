"""GPT-1 as OpenAI released it: the ``model/`` folder of ``openai/finetune-transformer-lm``. Its ``train.py`` reads
``params_shapes.json`` (a list of shapes), concatenates ``params_0.npy`` ... ``params_9.npy`` into one flat array,
splits that at the shapes' sizes and reshapes; the arrays are then, in TensorFlow's creation order:

    0       positions            (n_ctx, n_embd)           train.py puts them after the tokens and specials in ``we``
    1       tokens               (n_vocab, n_embd)         also the output layer: logits = h @ we.T
    then per block (``h0`` ... ``h11``), twelve:
            attn/c_attn w, b     (1, n_embd, 3 n_embd), (3 n_embd)     a width-1 convolution: q, k, v along outputs
            attn/c_proj w, b     (1, n_embd, n_embd), (n_embd)
            ln_1 g, b            (n_embd), (n_embd)                     after attention: post-norm blocks
            mlp/c_fc w, b        (1, n_embd, 4 n_embd), (4 n_embd)
            mlp/c_proj w, b      (1, 4 n_embd, n_embd), (n_embd)
            ln_2 g, b            (n_embd), (n_embd)

The release holds no fine-tuning tokens (train.py adds ``n_special`` random rows when it fine-tunes), so it is
radford's ``gpt1`` with ``vocab_size`` tokens and ``n_ctx`` positions. The head count is not in the shapes: GPT-1's
heads are 64 wide (768 dimensions, 12 heads; paper section 4.1), and a smaller model in this layout is read so too.
The tokenizer is the release's own ``encoder_bpe_40000.json`` + ``vocab_40000.bpe`` beside the weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor

from radford.checkpoints import Weights
from radford.errors import RadfordError
from radford.models.gpt import GPT1
from radford.tokenizers.base import Tokenizer
from radford.tokenizers.bpe import BPE_PAIRS
from radford.tokenizers.files import from_files

SHAPES = "params_shapes.json"
SHARDS = 10
HEAD_SIZE = 64
TOKENIZER_FILES = next(pair for pair in BPE_PAIRS if pair[0].startswith("encoder_bpe"))
# One block's arrays in train.py's order: radford's name, and whether it is a width-1 convolution's kernel
# (1, inputs, outputs), which nn.Linear stores as (outputs, inputs).
BLOCK = (
    ("attn.c_attn.weight", True),
    ("attn.c_attn.bias", False),
    ("attn.c_proj.weight", True),
    ("attn.c_proj.bias", False),
    ("ln_1.weight", False),
    ("ln_1.bias", False),
    ("mlp.c_fc.weight", True),
    ("mlp.c_fc.bias", False),
    ("mlp.c_proj.weight", True),
    ("mlp.c_proj.bias", False),
    ("ln_2.weight", False),
    ("ln_2.bias", False),
)


def _block_shapes(n: int) -> list[tuple[int, ...]]:
    return [
        (1, n, 3 * n),
        (3 * n,),
        (1, n, n),
        (n,),
        (n,),
        (n,),
        (1, n, 4 * n),
        (4 * n,),
        (1, 4 * n, n),
        (n,),
        (n,),
        (n,),
    ]


def _read_shapes(folder: Path) -> list[tuple[int, ...]]:
    file = folder / SHAPES
    try:
        shapes = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RadfordError(f"cannot read {file}: {error}") from error
    valid = isinstance(shapes, list) and all(
        isinstance(s, list) and all(isinstance(d, int) and d > 0 for d in s) for s in shapes
    )
    if not valid or len(shapes) < 2 or len(shapes[0]) != 2 or len(shapes[1]) != 2:
        raise RadfordError(
            f"{file} is not finetune-transformer-lm's list of parameter shapes (positions "
            "[n_ctx, n_embd], tokens [n_vocab, n_embd], then twelve per block)"
        )
    return [tuple(s) for s in shapes]


def _read_flat(folder: Path, size: int) -> np.ndarray:
    """The ten shards as train.py joins them: one flat float32 array of ``size`` values."""
    shards = []
    for i in range(SHARDS):
        file = folder / f"params_{i}.npy"
        try:
            shards.append(np.load(file, allow_pickle=False).reshape(-1))  # a .npy never runs code
        except (OSError, ValueError, EOFError) as error:
            raise RadfordError(f"cannot read {file}: truncated, or not a .npy array ({error})") from error
    flat = np.concatenate(shards)
    if flat.size != size or flat.dtype.kind != "f":
        raise RadfordError(
            f"params_0.npy ... params_{SHARDS - 1}.npy in {folder} hold {flat.size:,} {flat.dtype} "
            f"values; {SHAPES} describes {size:,} floats"
        )
    return flat


def _tokenizer(folder: Path, vocab_size: int) -> Tokenizer | None:
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return None
    tokenizer = from_files(folder)
    if tokenizer.vocab_size != vocab_size:
        raise RadfordError(f"the tokenizer in {folder} has {tokenizer.vocab_size} tokens, the weights {vocab_size}")
    return tokenizer


class GPT1Release:
    """The ``radford.formats`` entry for OpenAI's GPT-1 release (read only: ``radford convert`` writes GPT-1 as a
    Hugging Face ``openai-gpt`` folder)."""

    description = (
        "OpenAI's GPT-1 release (params_shapes.json + params_0.npy ... params_9.npy, the model/ folder of "
        "openai/finetune-transformer-lm)"
    )

    def detect(self, folder: Path) -> bool:
        return (folder / SHAPES).is_file() and all((folder / f"params_{i}.npy").is_file() for i in range(SHARDS))

    def read(self, folder: Path) -> Weights:
        shapes = _read_shapes(folder)
        (n_ctx, n_embd), (n_vocab, _) = shapes[0], shapes[1]
        n_layer, extra = divmod(len(shapes) - 2, len(BLOCK))
        expected = [(n_ctx, n_embd), (n_vocab, n_embd), *_block_shapes(n_embd) * n_layer]
        if extra or n_layer == 0 or shapes != expected:
            raise RadfordError(
                f"{folder / SHAPES} does not describe GPT-1's layout: positions, tokens, then "
                f"{len(BLOCK)} arrays per block of width {n_embd} ({len(shapes)} shapes given)"
            )
        if n_embd % HEAD_SIZE:
            raise RadfordError(
                f"{folder} holds {n_embd}-wide states; GPT-1's heads are {HEAD_SIZE} wide, so the "
                f"width must be a multiple of {HEAD_SIZE}"
            )
        flat = _read_flat(folder, sum(int(np.prod(s)) for s in shapes))
        arrays = np.split(flat, np.cumsum([int(np.prod(s)) for s in shapes])[:-1])
        tensors = [
            torch.from_numpy(a.reshape(s).astype(np.float32, copy=False)) for a, s in zip(arrays, shapes, strict=True)
        ]
        state_dict: dict[str, Tensor] = {
            "transformer.wpe.weight": tensors[0],
            "transformer.wte.weight": tensors[1],
            "lm_head.weight": tensors[1],
        }  # tied, as train.py's logits = h @ we.T
        for layer in range(n_layer):
            start = 2 + layer * len(BLOCK)
            for (name, kernel), tensor in zip(BLOCK, tensors[start : start + len(BLOCK)], strict=True):
                state_dict[f"transformer.h.{layer}.{name}"] = tensor[0].T.contiguous() if kernel else tensor
        hparams = {
            "vocab_size": n_vocab,
            "block_size": n_ctx,
            "n_layer": n_layer,
            "n_head": n_embd // HEAD_SIZE,
            "n_embd": n_embd,
            "bias": True,
            "post_norm": True,
        }
        return Weights(GPT1, hparams, state_dict, _tokenizer(folder, n_vocab))

    def exports(self, model_class: type[L.LightningModule]) -> bool:
        return False

    def export(self, weights: Weights, folder: Path) -> None:
        raise RadfordError("radford reads GPT-1's release but writes GPT-1 as a Hugging Face openai-gpt folder")


GPT1_RELEASE = GPT1Release()
