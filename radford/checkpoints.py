"""Checkpoints: radford's own ``.ckpt`` files and Hugging Face folders of GPT-1 and GPT-2 (loaded and converted)
and of CLIP (loaded).

A ``.ckpt`` that ``radford fit`` writes is Lightning's, plus a small record (``RecordForLoad``) of the model's
class and the tokenizer, so that ``radford.load(path)`` needs nothing else. A Hugging Face folder is
``config.json`` with ``model.safetensors`` (or ``pytorch_model.bin``) of a ``GPT2LMHeadModel`` or an
``OpenAIGPTLMHeadModel`` or a ``CLIPModel``, and optionally its tokenizer files; OpenAI's released weights come
this way.
Nothing here runs pickled code: ``.ckpt`` and ``.bin`` files are read with ``weights_only=True``.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from radford.errors import RadfordError
from radford.io import write_atomically
from radford.models.gpt import ARCHITECTURE, GPT, GPT1, state_dict_from_hf, state_dict_to_hf
from radford.tokenizers import BPE_PAIRS, CHECKPOINT_SUFFIX, TOKENIZER_JSON, Tokenizer, from_files, from_json

RECORD = "radford"  # the key of RecordForLoad's entry in a checkpoint
HF_CONFIG = "config.json"
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # in the order they are looked for
HF_CLIP = "clip"  # transformers' CLIPModel, which radford.load reads as radford.models.clip.CLIP
TOKENIZER_FILES = (TOKENIZER_JSON, *(name for pair in BPE_PAIRS for name in pair))


@dataclass(frozen=True)
class HFFamily:
    """A Hugging Face model type radford reads and writes."""

    architectures: tuple[str, ...]  # what config.json may name; conversion writes the first
    post_norm: bool
    # config.json settings radford's architecture fixes, with the values that mean it; conversion writes the
    # first. A checkpoint with another value would load without error and compute something else.
    fixed: dict[str, tuple[Any, ...]]


HF_FAMILIES = {
    "gpt2": HFFamily(
        ("GPT2LMHeadModel", "GPT2Model"), post_norm=False,
        fixed={"activation_function": ("gelu_new", "gelu_pytorch_tanh"), "layer_norm_epsilon": (1e-5,),
               "n_inner": (None,), "scale_attn_weights": (True,), "scale_attn_by_inverse_layer_idx": (False,)},
    ),
    # HF's OpenAI GPT calls GELU's tanh approximation "gelu" (GPT2's "gelu_new").
    "openai-gpt": HFFamily(
        ("OpenAIGPTLMHeadModel", "OpenAIGPTModel"), post_norm=True,
        fixed={"afn": ("gelu",), "layer_norm_epsilon": (1e-5,)},
    ),
}


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise RadfordError(f"checkpoint {path} not found: give a radford .ckpt file or a Hugging Face model folder")
    return path


# -- radford .ckpt ------------------------------------------------------------------------------------------


class RecordForLoad(L.Callback):
    """Stores in every checkpoint what ``radford.load`` needs beyond Lightning's own contents: the model's
    class (Lightning records only its arguments) and the tokenizer of the data module, if it has one."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        cls = type(pl_module)
        tokenizer = getattr(trainer.datamodule, "tokenizer", None)
        checkpoint[RECORD] = {
            "class_path": f"{cls.__module__}.{cls.__qualname__}",
            "tokenizer": tokenizer.to_json() if isinstance(tokenizer, Tokenizer) else None,
        }


def torch_load(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load`` that never runs pickled code, with one clear line for a missing, truncated or foreign file."""
    path = _existing(path)
    if path.is_dir():
        raise RadfordError(f"{path} is a folder, not a .ckpt file")
    try:
        # mmap: generating from a checkpoint should not read its optimizer state into memory.
        return torch.load(path, map_location=map_location, weights_only=True, mmap=True)
    except pickle.UnpicklingError as error:  # weights_only refused an object, which could run code
        raise RadfordError(f"{path} holds pickled objects other than tensors and plain data; radford never "
                           "runs pickled code (it loads with weights_only=True)") from error
    except Exception as error:  # torch raises several kinds for a truncated or foreign file
        raise RadfordError(f"cannot read checkpoint {path}: truncated, corrupt, or not from torch.save") from error


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A radford ``.ckpt``'s contents, tensors memory-mapped; a file without radford's record is refused."""
    checkpoint = torch_load(path)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get(RECORD), dict):
        raise RadfordError(
            f"{path} is not a radford checkpoint: it lacks the {RECORD!r} record that radford fit writes "
            "(a plain Lightning checkpoint loads with YourModelClass.load_from_checkpoint(path))"
        )
    return checkpoint


def _recorded_tokenizer(checkpoint: dict[str, Any]) -> Tokenizer | None:
    text = checkpoint[RECORD].get("tokenizer")
    return None if text is None else from_json(text)


def _checkpoint_architecture(path: Path, checkpoint: dict[str, Any]) -> dict[str, Any]:
    cls = _import_class(path, checkpoint[RECORD].get("class_path", ""))
    # A model that holds a GPT (a fine-tuned classifier) has its own names and shapes: radford.load reads it.
    if not issubclass(cls, GPT):
        raise RadfordError(f"{path} holds a {cls.__name__}, not a GPT's weights; load it whole with radford.load")
    hparams = checkpoint.get("hyper_parameters", {})
    absent = [name for name in ARCHITECTURE if name not in hparams]
    absent += [] if "state_dict" in checkpoint else ["state_dict"]
    if absent:
        raise RadfordError(f"{path} holds no GPT weights: its checkpoint lacks {', '.join(absent)}")
    return {name: hparams[name] for name in ARCHITECTURE}


def _import_class(path: Path, class_path: str) -> type[L.LightningModule]:
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise RadfordError(f"{path} was written by {class_path}, which cannot be imported here: {error}") from error
    if not (isinstance(cls, type) and issubclass(cls, L.LightningModule)):
        raise RadfordError(f"{path} names {class_path} as its model, which is not a LightningModule")
    return cls


# -- Hugging Face folders -----------------------------------------------------------------------------------


def _read_hf_config(folder: Path) -> tuple[str, dict[str, Any]]:
    """The model type and config.json of a Hugging Face folder, checked to be one radford computes exactly."""
    file = folder / HF_CONFIG
    if not file.is_file():
        raise RadfordError(f"{folder} is not a Hugging Face model folder: it has no {HF_CONFIG}")
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RadfordError(f"cannot read {file}: {error}") from error
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type == HF_CLIP:  # radford.models.clip checks its config beside its conversion table
        return model_type, config
    if model_type not in HF_FAMILIES:
        raise RadfordError(f"{file} has model_type {model_type!r}, which radford does not load; "
                           f"supported: {', '.join(HF_FAMILIES)}, {HF_CLIP}")
    family = HF_FAMILIES[model_type]
    for architecture in config.get("architectures") or ():
        if architecture not in family.architectures:
            raise RadfordError(f"{file} names architecture {architecture!r}, which radford does not load; "
                               f"supported for {model_type}: {', '.join(family.architectures)}")
    for key, values in family.fixed.items():
        if config.get(key, values[0]) not in values:
            raise RadfordError(f"{file} sets {key} to {config[key]!r}; radford's {model_type} computes "
                               f"{' or '.join(map(repr, values))}")
    return model_type, config


def _read_hf_weights(folder: Path) -> dict[str, Tensor]:
    for name in HF_WEIGHTS:
        file = folder / name
        if file.is_file():
            try:
                if file.suffix == ".safetensors":
                    return load_file(file)
                return torch.load(file, map_location="cpu", weights_only=True, mmap=True)
            except (SafetensorError, RuntimeError, OSError, EOFError) as error:
                raise RadfordError(f"cannot read weights {file}: truncated or corrupt ({error})") from error
    raise RadfordError(f"no weights in {folder}: looked for {' or '.join(HF_WEIGHTS)}")


def _hf_config(arch: dict[str, Any], tokenizer: Tokenizer | None) -> dict[str, Any]:
    """config.json for transformers' GPT2LMHeadModel or OpenAIGPTLMHeadModel with radford's architecture."""
    if not arch["bias"]:
        raise RadfordError("a model with bias=False has no Hugging Face equivalent: GPT-2 and GPT-1 have biases")
    model_type = "openai-gpt" if arch["post_norm"] else "gpt2"
    family = HF_FAMILIES[model_type]
    # GPT2Config's default end-of-text id is GPT-2's 50256, which another vocabulary may not have.
    eot = tokenizer.eot_id if tokenizer is not None else None
    return {
        "model_type": model_type, "architectures": [family.architectures[0]],
        "vocab_size": arch["vocab_size"], "n_positions": arch["block_size"], "n_embd": arch["n_embd"],
        "n_layer": arch["n_layer"], "n_head": arch["n_head"], "tie_word_embeddings": True,
        "bos_token_id": eot, "eos_token_id": eot,
        **{key: values[0] for key, values in family.fixed.items()},
    }


def saved_tokenizer(path: str | os.PathLike) -> Tokenizer | None:
    """The tokenizer a radford .ckpt records or a Hugging Face folder holds; None when there is none."""
    path = _existing(path)
    if path.is_dir():
        return from_files(path) if any((path / name).is_file() for name in TOKENIZER_FILES) else None
    return _recorded_tokenizer(read_checkpoint(path))


# -- loading ------------------------------------------------------------------------------------------------


def _check_fits(path: Path, arch: dict[str, Any], state_dict: dict[str, Tensor]) -> None:
    """Weights that do not fit the architecture recorded beside them: say which, rather than torch's list."""
    with torch.device("meta"):  # shapes only: no memory, no init
        expected = GPT(**arch).state_dict()
    problems = [f"{key} is missing" for key in sorted(expected.keys() - state_dict.keys())]
    problems += [f"{key} is unexpected" for key in sorted(state_dict.keys() - expected.keys())]
    problems += [f"{key} is {tuple(state_dict[key].shape)}, not {tuple(expected[key].shape)}"
                 for key in sorted(expected.keys() & state_dict.keys()) if state_dict[key].shape != expected[key].shape]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise RadfordError(f"weights in {path} do not fit the architecture recorded with them ({arch}): "
                           f"{problems[0]}{more}")


def load_weights(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """GPT's architecture arguments (``ARCHITECTURE``) and a state dict in radford's names, from a radford
    .ckpt of a GPT or a Hugging Face GPT2LMHeadModel/OpenAIGPTLMHeadModel folder."""
    path = _existing(path)
    if path.is_dir():
        model_type, config = _read_hf_config(path)
        if model_type == HF_CLIP:
            raise RadfordError(f"{path} holds a CLIPModel, not GPT weights: load it with radford.load")
        arch = {"vocab_size": config["vocab_size"], "block_size": config["n_positions"], "n_layer": config["n_layer"],
                "n_head": config["n_head"], "n_embd": config["n_embd"], "bias": True,
                "post_norm": HF_FAMILIES[model_type].post_norm}
        weights = _read_hf_weights(path)
        try:
            state_dict = state_dict_from_hf(weights)
        except (KeyError, AttributeError) as error:  # no token embedding, or not a dict of tensors
            raise RadfordError(f"the weights in {path} are not a {model_type} model's: no {error}") from error
    else:
        checkpoint = read_checkpoint(path)
        arch, state_dict = _checkpoint_architecture(path, checkpoint), checkpoint["state_dict"]
    _check_fits(path, arch, state_dict)
    return arch, state_dict


def _load_hf_clip(folder: Path) -> L.LightningModule:
    """A Hugging Face CLIPModel folder as radford's CLIP, with CLIP's tokenizer from the folder if it has one."""
    from radford.models.clip import from_hf
    from radford.tokenizers.clip import CLIPTokenizer

    model = from_hf(_read_hf_config(folder)[1], _read_hf_weights(folder), source=f"the weights in {folder}")
    has_tokenizer = any((folder / name).is_file() for name in TOKENIZER_FILES)
    model.tokenizer = CLIPTokenizer(str(folder)) if has_tokenizer else None
    return model


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> L.LightningModule:
    """The model a radford .ckpt or a Hugging Face GPT or CLIP folder holds, in eval mode on ``map_location``.

    A .ckpt comes back as the class that trained it; a Hugging Face folder as GPT (gpt2), GPT1
    (openai-gpt) or CLIP (clip). The model's ``tokenizer`` attribute is the tokenizer saved with it, or None.
    """
    path = _existing(path)
    if path.is_dir() and _read_hf_config(path)[0] == HF_CLIP:
        model = _load_hf_clip(path)
    elif path.is_dir():
        arch, state_dict = load_weights(path)
        model: L.LightningModule = (GPT1 if arch["post_norm"] else GPT)(**arch)
        model.load_state_dict(state_dict)
        model.tokenizer = saved_tokenizer(path)
    else:
        checkpoint = read_checkpoint(path)
        cls = _import_class(path, checkpoint[RECORD].get("class_path", ""))
        # LightningCLI adds _class_path and _instantiator for its own loading; they are not arguments.
        hparams = {k: v for k, v in checkpoint.get("hyper_parameters", {}).items() if not k.startswith("_")}
        model = cls(**hparams)
        try:
            model.load_state_dict(checkpoint.get("state_dict", {}))
        except RuntimeError as error:
            detail = " ".join(str(error).split())
            raise RadfordError(f"the weights in {path} do not fit {cls.__name__}: {detail[:300]}") from error
        model.tokenizer = _recorded_tokenizer(checkpoint)
    return model.to(map_location).eval()


# -- conversion ---------------------------------------------------------------------------------------------


def _write_hf(arch: dict[str, Any], state_dict: dict[str, Tensor], tokenizer: Tokenizer | None, folder: Path) -> None:
    if folder.is_file() or folder.suffix == CHECKPOINT_SUFFIX:
        raise RadfordError(f"a .ckpt converts to a Hugging Face folder, and {folder} is a file or named as a .ckpt; "
                           "give a folder")
    config = _hf_config(arch, tokenizer)
    hf_sd = state_dict_to_hf(state_dict, config["model_type"])
    # lm_head is wte (tied); safetensors refuses two names for one tensor, and transformers ties it again on load.
    del hf_sd["lm_head.weight"]
    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(folder / HF_WEIGHTS[0], lambda tmp: save_file(
        {key: value.contiguous() for key, value in hf_sd.items()}, tmp, metadata={"format": "pt"}))
    if tokenizer is not None:
        write_atomically(folder / TOKENIZER_JSON, lambda tmp: tmp.write_text(tokenizer.to_json(), encoding="utf-8"))
    else:  # a stale tokenizer would be taken for this model's
        (folder / TOKENIZER_JSON).unlink(missing_ok=True)
    # Last, so that a folder with a config.json has the weights it describes.
    write_atomically(folder / HF_CONFIG, lambda tmp: tmp.write_text(json.dumps(config, indent=2), encoding="utf-8"))


def _write_checkpoint(arch: dict[str, Any], state_dict: dict[str, Tensor], tokenizer: Tokenizer | None,
                      path: Path) -> None:
    if path.is_dir():
        raise RadfordError(f"a Hugging Face folder converts to a .ckpt file, and {path} is a folder; give a file")
    cls = GPT1 if arch["post_norm"] else GPT
    checkpoint = {
        "state_dict": state_dict,
        "hyper_parameters": arch,
        RECORD: {"class_path": f"{cls.__module__}.{cls.__qualname__}",
                 "tokenizer": tokenizer.to_json() if tokenizer is not None else None},
        # Lightning's load_from_checkpoint migrates a checkpoint from the version it names.
        "pytorch-lightning_version": L.__version__,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda tmp: torch.save(checkpoint, tmp))


def convert(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """A radford .ckpt to a Hugging Face folder (config.json, model.safetensors, tokenizer.json), or a Hugging
    Face folder to a .ckpt that ``radford.load`` and ``GPT.load_from_checkpoint`` read. Returns ``dst``."""
    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    arch, state_dict = load_weights(src)
    write = _write_checkpoint if src.is_dir() else _write_hf
    write(arch, state_dict, saved_tokenizer(src), dst)
    return dst


__all__ = ["RecordForLoad", "convert", "load", "load_weights", "read_checkpoint", "saved_tokenizer"]
