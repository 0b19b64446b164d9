"""Checkpoints, whatever their format: radford's own ``.ckpt`` files, and model folders in the formats that model
families register (entry-point group ``radford.formats``: Hugging Face GPT-2, OpenAI GPT and CLIP folders, ...).

A ``.ckpt`` that ``radford fit`` writes is Lightning's, plus a small record (``RecordForLoad``) of the model's class,
so that ``radford.load(path)`` needs nothing else; the tokenizer is the data module's state, which Lightning stores in
the same file. The class is resolved through the registry, never imported from the name a file gives: a checkpoint
runs no code of its choosing. Nothing here runs pickled code either: files are read with ``weights_only=True``.
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import lightning as L
import torch
from torch import Tensor

from radford import registry
from radford.errors import RadfordError
from radford.hub import local_path
from radford.io import write_atomically
from radford.tokenizers.base import Tokenizer
from radford.tokenizers.files import from_json

RECORD = "radford"  # the key of RecordForLoad's entry in a checkpoint
TOKENIZER_STATE = "tokenizer"  # the key of the tokenizer's JSON in a data module's state
CHECKPOINT_SUFFIX = ".ckpt"


@dataclass
class Weights:
    """What a checkpoint holds: the model's class and constructor arguments, its weights, and its tokenizer."""

    model_class: type[L.LightningModule]
    hparams: dict[str, Any]
    state_dict: dict[str, Tensor]
    tokenizer: Tokenizer | None

    def build(self, source: str | os.PathLike) -> L.LightningModule:
        """The model with these weights, its ``tokenizer`` attribute set; a mismatch is one line naming ``source``."""
        model = self.model_class(**self.hparams)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as error:
            detail = " ".join(str(error).split())
            raise RadfordError(
                f"the weights in {source} do not fit {self.model_class.__name__}: {detail[:300]}"
            ) from error
        model.tokenizer = self.tokenizer
        return model


class Format(Protocol):
    """A model folder layout that a model family reads, registered in the ``radford.formats`` entry-point group.
    ``exports`` and ``export`` are for the formats radford also writes (``radford convert``)."""

    description: str

    def detect(self, folder: Path) -> bool: ...

    def read(self, folder: Path) -> Weights: ...

    def exports(self, model_class: type[L.LightningModule]) -> bool: ...

    def export(self, weights: Weights, folder: Path) -> None: ...


def existing(path: str | os.PathLike) -> Path:
    """A checkpoint that exists: a radford .ckpt, a model folder, or the cached folder of a Hugging Face hub id
    (``gpt2``, ``org/name@revision``: ``radford.hub``), downloaded first if need be."""
    local = local_path(path)
    if not local.exists():
        raise RadfordError(
            f"checkpoint {local} not found: give a radford .ckpt file, a model folder, or a Hugging "
            "Face hub id (name or org/name, optionally @revision)"
        )
    return local


# -- radford .ckpt ----------------------------------------------------------------------------------------------


class RecordForLoad(L.Callback):
    """Stores in every checkpoint the registered model class (Lightning records only its arguments) and where the
    data module's state, which holds the tokenizer, is: what ``radford.load`` needs beyond Lightning's contents."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        # FSDP2's fully_shard swaps the module's class for a subclass of its own (FSDPGPT): record the model's.
        cls = next(c for c in type(pl_module).__mro__ if not c.__module__.startswith("torch."))
        datamodule = trainer.datamodule
        # Lightning stores a data module's state_dict under its class's qualified name.
        state = type(datamodule).__qualname__ if isinstance(getattr(datamodule, "tokenizer", None), Tokenizer) else None
        checkpoint[RECORD] = {"class_path": f"{cls.__module__}.{cls.__qualname__}", "tokenizer_state": state}


def torch_load(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load`` that never runs pickled code, with one clear line for a missing, truncated or foreign file."""
    path = existing(path)
    if path.is_dir():
        raise RadfordError(f"{path} is a folder, not a .ckpt file")
    try:
        # mmap: generating from a checkpoint should not read its optimizer state into memory.
        return torch.load(path, map_location=map_location, weights_only=True, mmap=True)
    except pickle.UnpicklingError as error:  # weights_only refused an object, which could run code
        raise RadfordError(
            f"{path} holds pickled objects other than tensors and plain data; radford never "
            "runs pickled code (it loads with weights_only=True)"
        ) from error
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


def model_class(path: str | os.PathLike, class_path: Any) -> type[L.LightningModule]:
    """The registered model class a checkpoint names, found without importing anything the file names: only the class
    of a registered model (``radford plugins``) is ever imported."""
    registered = []
    for plugin in registry.plugins("models"):
        if plugin.class_path == class_path:
            return plugin.load()
        registered.append(plugin.class_path)
    raise RadfordError(
        f"{path} names the model class {class_path!r}, which no registered plugin provides; "
        f"registered models: {', '.join(registered)}"
    )


def _recorded_tokenizer(checkpoint: dict[str, Any]) -> Tokenizer | None:
    key = checkpoint[RECORD].get("tokenizer_state")
    state = checkpoint.get(key) if key is not None else None
    if not isinstance(state, dict) or not isinstance(state.get(TOKENIZER_STATE), str):
        return None
    return from_json(state[TOKENIZER_STATE])


def _read_ckpt(path: Path) -> Weights:
    checkpoint = read_checkpoint(path)
    cls = model_class(path, checkpoint[RECORD].get("class_path"))
    # LightningCLI adds _class_path and _instantiator for its own loading; they are not arguments.
    hparams = {k: v for k, v in checkpoint.get("hyper_parameters", {}).items() if not k.startswith("_")}
    return Weights(cls, hparams, checkpoint.get("state_dict", {}), _recorded_tokenizer(checkpoint))


def write_checkpoint(weights: Weights, path: Path) -> None:
    """A .ckpt that ``radford.load`` and the model class's ``load_from_checkpoint`` read, written atomically."""
    if path.is_dir():
        raise RadfordError(f"{path} is a folder; a .ckpt is a file: give a file name")
    cls = weights.model_class
    checkpoint: dict[str, Any] = {
        "state_dict": weights.state_dict,
        "hyper_parameters": weights.hparams,
        RECORD: {
            "class_path": f"{cls.__module__}.{cls.__qualname__}",
            "tokenizer_state": None if weights.tokenizer is None else TOKENIZER_STATE,
        },
        # Lightning's load_from_checkpoint migrates a checkpoint from the version it names.
        "pytorch-lightning_version": L.__version__,
    }
    if weights.tokenizer is not None:
        checkpoint[TOKENIZER_STATE] = {TOKENIZER_STATE: weights.tokenizer.to_json()}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda tmp: torch.save(checkpoint, tmp))


# -- model folders --------------------------------------------------------------------------------------------


def formats() -> list[Format]:
    """Every registered folder format, built-ins first."""
    return [plugin.load() for plugin in sorted(registry.plugins("formats"), key=lambda p: not p.builtin)]


def folder_format(folder: Path) -> Format:
    """The registered format that recognises ``folder``."""
    known = formats()
    for candidate in known:
        if candidate.detect(folder):
            return candidate
    described = "; ".join(f.description for f in known)
    raise RadfordError(f"{folder} is not a model folder radford reads{_model_type(folder)}; radford reads: {described}")


def _model_type(folder: Path) -> str:
    """What a Hugging Face folder says it holds, to name in an error: every hub folder has a config.json."""
    try:
        return f" (its config.json says model_type {json.loads((folder / 'config.json').read_text())['model_type']!r})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


# -- loading and converting -------------------------------------------------------------------------------------


def read_weights(path: str | os.PathLike) -> Weights:
    """What a radford .ckpt or a model folder in a registered format holds, tensors not yet in a model."""
    path = existing(path)
    return folder_format(path).read(path) if path.is_dir() else _read_ckpt(path)


def saved_tokenizer(path: str | os.PathLike) -> Tokenizer | None:
    """The tokenizer a radford .ckpt records or a model folder holds; None when there is none."""
    return read_weights(path).tokenizer


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> L.LightningModule:
    """The model a radford .ckpt or a model folder (Hugging Face GPT-2, OpenAI GPT or CLIP, ...) holds, in eval mode
    on ``map_location``. A .ckpt comes back as the class that trained it, a folder as the class its format names
    (GPT, GPT1, CLIP, ...). The model's ``tokenizer`` attribute is the tokenizer saved with it, or None."""
    return read_weights(path).build(path).to(map_location).eval()


def convert(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """A radford .ckpt, or a model folder of another format (OpenAI's GPT-1 release), to a model folder of the format
    its model family exports (a Hugging Face folder for GPT-2 and GPT-1); or a model folder to a .ckpt (a ``dst`` named
    ``*.ckpt``, or any existing path). Returns ``dst``."""
    src, dst = existing(src), Path(dst).expanduser()
    weights = read_weights(src)
    if src.is_dir() and (dst.suffix == CHECKPOINT_SUFFIX or dst.exists()):
        write_checkpoint(weights, dst)
        return dst
    if dst.is_file() or dst.suffix == CHECKPOINT_SUFFIX:
        raise RadfordError(
            f"a .ckpt converts to a model folder, and {dst} is a file or named as a .ckpt; give a folder"
        )
    exporter = next((f for f in formats() if f.exports(weights.model_class)), None)
    if exporter is None:
        raise RadfordError(
            f"no registered format exports a {weights.model_class.__name__}; radford converts GPT-2 "
            "and GPT-1 checkpoints to Hugging Face folders"
        )
    exporter.export(weights, dst)
    return dst


__all__ = [
    "RECORD",
    "Format",
    "RecordForLoad",
    "Weights",
    "convert",
    "load",
    "read_checkpoint",
    "read_weights",
    "saved_tokenizer",
    "torch_load",
    "write_checkpoint",
]
