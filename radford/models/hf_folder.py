"""What every Hugging Face model folder has, whatever the model: config.json, the weights, the tokenizer's files."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from radford.errors import RadfordError
from radford.tokenizers import BPE_PAIRS, TOKENIZER_JSON, Tokenizer, from_files

HF_CONFIG = "config.json"
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # in the order they are looked for
TOKENIZER_FILES = (TOKENIZER_JSON, *(name for pair in BPE_PAIRS for name in pair))


def read_config(folder: Path) -> dict[str, Any]:
    """A Hugging Face folder's config.json as a dict, in one clear line when it is missing or malformed."""
    file = folder / HF_CONFIG
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise RadfordError(f"{folder} is not a Hugging Face model folder: it has no {HF_CONFIG}") from error
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RadfordError(f"cannot read {file}: {error}") from error
    if not isinstance(config, dict):
        raise RadfordError(f"{file} holds a {type(config).__name__}, not a JSON object")
    return config


def read_hf_weights(folder: Path) -> dict[str, Tensor]:
    """The tensors of a Hugging Face folder's model.safetensors (or pytorch_model.bin, read without running pickled
    code)."""
    for name in HF_WEIGHTS:
        file = folder / name
        if file.is_file():
            try:
                if file.suffix == ".safetensors":
                    return load_file(file)
                weights = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
            except pickle.UnpicklingError as error:  # weights_only refused an object, which could run code
                raise RadfordError(
                    f"{file} holds pickled objects other than tensors, which radford never unpickles (they could run "
                    "code); if you trust it, convert it to model.safetensors (transformers' from_pretrained, then "
                    "save_pretrained)"
                ) from error
            except (SafetensorError, RuntimeError, OSError, EOFError) as error:
                raise RadfordError(f"cannot read weights {file}: truncated or corrupt ({error})") from error
            # A pickle may hold any plain data (a list, a number where a tensor belongs): the rename tables expect
            # names and tensors, and would fail on anything else with a traceback.
            if not isinstance(weights, dict) or not all(
                isinstance(key, str) and isinstance(value, Tensor) for key, value in weights.items()
            ):
                raise RadfordError(f"{file} holds no state dict: expected a mapping of parameter names to tensors")
            return weights
    raise RadfordError(f"no weights in {folder}: looked for {' or '.join(HF_WEIGHTS)}")


def folder_tokenizer(folder: Path) -> Tokenizer | None:
    """The tokenizer whose files a model folder holds, or None."""
    return from_files(folder) if any((folder / name).is_file() for name in TOKENIZER_FILES) else None
