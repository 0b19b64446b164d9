"""Checkpoints, whatever their format: radford's own ``.ckpt`` files, the sharded checkpoint folders that
``strategy/fsdp`` saves (``torch.distributed.checkpoint``), and model folders in the formats that model families
register (entry-point group ``radford.formats``: Hugging Face GPT-2, OpenAI GPT and CLIP folders, ...).

A ``.ckpt`` that ``radford fit`` writes is Lightning's, plus a small record (``RecordForLoad``) of the model's class,
so that ``radford.load(path)`` needs nothing else; the tokenizer is the data module's state, which Lightning stores in
the same file. The class is resolved through the registry, never imported from the name a file gives: a checkpoint
runs no code of its choosing. Nothing here runs pickled code either: files are read with ``weights_only=True``, and
a sharded folder's index, a plain pickle, through an allow-list of the classes ``torch.distributed.checkpoint`` writes.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import lightning as L
import torch
import torch.distributed.checkpoint as dcp
from torch import Tensor
from torch.distributed.checkpoint import CheckpointException, DefaultLoadPlanner, FileSystemReader
from torch.distributed.checkpoint.metadata import BytesStorageMetadata, Metadata, StorageMeta, TensorStorageMetadata
from torch.distributed.checkpoint.planner import ReadItem

from radford import registry
from radford.errors import RadfordError
from radford.hub import local_path
from radford.io import write_atomically
from radford.tokenizers.base import Tokenizer
from radford.tokenizers.files import from_json

RECORD = "radford"  # the key of RecordForLoad's entry in a checkpoint
TOKENIZER_STATE = "tokenizer"  # the key of the tokenizer's JSON in a data module's state
CHECKPOINT_SUFFIX = ".ckpt"
WEIGHTS = "state_dict"  # Lightning's key of the model's weights, in a .ckpt and in a sharded folder's index
SHARDED_INDEX = ".metadata"  # what makes a folder a torch.distributed.checkpoint (FSDP's sharded checkpoints)
LIGHTNING_EXTRA = "meta.pt"  # what Lightning saves beside the shards: everything but the weights and optimizers


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
    return _with_record(torch_load(path), path)


def _with_record(checkpoint: Any, path: str | os.PathLike) -> dict[str, Any]:
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


def _weights(checkpoint: dict[str, Any], path: Path) -> Weights:
    """What a checkpoint's contents (a .ckpt's, or a sharded folder's gathered) hold, its record checked."""
    checkpoint = _with_record(checkpoint, path)
    cls = model_class(path, checkpoint[RECORD].get("class_path"))
    # LightningCLI adds _class_path and _instantiator for its own loading; they are not arguments.
    hparams = {k: v for k, v in checkpoint.get("hyper_parameters", {}).items() if not k.startswith("_")}
    return Weights(cls, hparams, checkpoint.get(WEIGHTS, {}), _recorded_tokenizer(checkpoint))


def _read_ckpt(path: Path) -> Weights:
    return _weights(torch_load(path), path)


def save_atomically(obj: Any, path: Path) -> None:
    """``torch.save`` whole or not at all: into an open temporary file beside ``path``, flushed to the disk, then
    renamed over it (``radford.io.write_atomically``), so a kill or a full disk leaves the previous file or the new
    one, never half of one, and no temporary file. A write the system refuses is one line naming ``path`` and the
    system's reason (``No space left on device``)."""

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as file:
            try:
                torch.save(obj, file)
            except RuntimeError as error:
                # torch's zip writer reports the file's own OSError (ENOSPC, EIO) as a RuntimeError about its C++
                # internals ("unexpected pos 704 vs 598"); the system's reason is what a user can act on.
                refused = _os_error(error)
                if refused is None:
                    raise
                raise OSError(refused.errno, refused.strerror, str(path)) from error
            file.flush()
            os.fsync(file.fileno())  # the rename must not reach the disk before the data does

    write_atomically(path, save)


def _os_error(error: BaseException | None) -> OSError | None:
    """The OSError that ``error`` was raised from or while handling, if any."""
    seen = set()
    while error is not None and not isinstance(error, OSError) and id(error) not in seen:
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return error if isinstance(error, OSError) else None


def write_checkpoint(weights: Weights, path: Path) -> None:
    """A .ckpt that ``radford.load`` and the model class's ``load_from_checkpoint`` read, written atomically
    (``save_atomically``)."""
    if path.is_dir():
        raise RadfordError(f"{path} is a folder; a .ckpt is a file: give a file name")
    cls = weights.model_class
    checkpoint: dict[str, Any] = {
        WEIGHTS: weights.state_dict,
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
    save_atomically(checkpoint, path)


# -- sharded checkpoint folders (strategy/fsdp) ------------------------------------------------------------------

# What a torch.distributed.checkpoint index (``.metadata``, written by ``pickle.dump``) names: its own dataclasses and
# the storage records of its file system writer, tensor sizes, dtypes and layouts, and the path it was saved to.
# torch reads it with ``pickle.load``, which would run whatever a crafted index names; radford allows these only.
SHARDED_INDEX_GLOBALS = {
    "torch.distributed.checkpoint.metadata": None,  # None: any class the module itself defines
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo"},
    "torch.serialization": {"_get_layout"},  # a layout by its name (torch.strided)
    "torch": {"Size"},  # and torch's dtypes, which pickle by name
    "pathlib": {"Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath"},
    "collections": {"OrderedDict"},
}


class _NotAnIndex(pickle.UnpicklingError):
    """A sharded folder's index names what no index holds: it was made to run code, or is something else."""


class _IndexUnpickler(pickle.Unpickler):
    """Unpickles a sharded folder's index, refusing every global ``SHARDED_INDEX_GLOBALS`` does not name."""

    def find_class(self, module: str, name: str) -> Any:
        if module in SHARDED_INDEX_GLOBALS:
            allowed = SHARDED_INDEX_GLOBALS[module]
            found = getattr(importlib.import_module(module), name, None)  # a dotted name (Path.write_text): None
            if allowed is None and isinstance(found, type) and found.__module__ == module:
                return found
            if (allowed and name in allowed) or (module == "torch" and isinstance(found, torch.dtype)):
                return found
        raise _NotAnIndex(f"{module}.{name} is not in a sharded checkpoint's index")


class _SafeReader(FileSystemReader):
    """torch.distributed.checkpoint's file system reader, its index read by ``_IndexUnpickler``; the shards' tensors
    it reads with ``weights_only=True`` itself."""

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        with open(Path(self.path) / SHARDED_INDEX, "rb") as file:
            metadata = _IndexUnpickler(file).load()
        if not isinstance(metadata, Metadata):
            raise _NotAnIndex(f"the index holds a {type(metadata).__name__}, not a Metadata")
        if getattr(metadata, "storage_meta", None) is None:  # as FileSystemReader.read_metadata does
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


def is_sharded(path: Path) -> bool:
    """A checkpoint folder in ``torch.distributed.checkpoint``'s format: what ``strategy/fsdp`` saves, a shard a
    process (``__0_0.distcp``), the index (``.metadata``) and Lightning's ``meta.pt``."""
    return path.is_dir() and (path / SHARDED_INDEX).is_file()


def _said(error: BaseException) -> str:
    """An exception on one short line: its kind, and its message where it has one."""
    said = " ".join(str(error).split())
    return f"{type(error).__name__}: {said[:200]}" if said else type(error).__name__


class _SafePlanner(DefaultLoadPlanner):
    """torch.distributed.checkpoint's load planner for the flat keys of the index, reading a non-tensor entry (an
    optimizer's ``param_groups``) with ``weights_only=True``, where torch's own planner runs any pickled code."""

    def __init__(self) -> None:
        super().__init__(flatten_state_dict=False)

    def load_bytes(self, read_item: ReadItem, value: io.BytesIO) -> None:
        # Into the caller's dict (set_up_planner's original_state_dict), not the planner's working copy.
        self.original_state_dict[read_item.dest_index.fqn] = torch.load(value, weights_only=True)


def _load_sharded(folder: Path, wanted: Callable[[Metadata], dict[str, Any]]) -> dict[str, Any]:
    """The entries ``wanted(index)`` names (flat keys, as the index has them, with the tensors to fill), read from
    every shard in this one process: ``torch.distributed.checkpoint.load`` with ``no_dist``, as
    ``format_utils.dcp_to_torch_save`` does, but with the index unpickled under ``SHARDED_INDEX_GLOBALS``, every
    entry read with ``weights_only``, and only what is asked for read. Anything else is one line naming the folder."""
    reader = _SafeReader(folder)
    try:
        state = wanted(reader.read_metadata())
        with warnings.catch_warnings():
            # torch warns that it assumes one process even when told so (no_dist), as here: on purpose.
            warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
            dcp.load(state, storage_reader=reader, planner=_SafePlanner(), no_dist=True)
    except _NotAnIndex as error:
        raise RadfordError(
            f"{folder / SHARDED_INDEX} names objects other than a sharded checkpoint's index ({error}); radford never "
            "runs pickled code"
        ) from error
    except CheckpointException as error:  # what reading a shard raised (a BaseException: not caught below)
        cause = next(iter(error.failures.values()))[0]
        if isinstance(cause, pickle.UnpicklingError):  # weights_only refused an entry's object
            raise RadfordError(
                f"{folder} holds pickled objects other than tensors and plain data; radford never runs pickled code "
                "(it loads with weights_only=True)"
            ) from error
        # The system's reason for a file it refused; torch's own words for a cut shard are its zip reader's internals.
        why = f": {cause.strerror} ({cause.filename})" if isinstance(cause, OSError) and cause.strerror else ""
        raise RadfordError(
            f"cannot read the sharded checkpoint {folder}: a shard is missing, truncated or corrupt{why}"
        ) from error
    except Exception as error:  # an index that is not one: torch raises several kinds
        raise RadfordError(f"cannot read the sharded checkpoint {folder}: {_said(error)}") from error
    return state


def _lightning_extra(folder: Path) -> dict[str, Any]:
    """Lightning's ``meta.pt`` beside the shards (hyperparameters, radford's record, the data module's state), read
    as any checkpoint is; empty where there is none."""
    extra = folder / LIGHTNING_EXTRA
    contents = torch_load(extra) if extra.is_file() else {}
    if not isinstance(contents, dict):
        raise RadfordError(f"{extra} is not a Lightning checkpoint's {LIGHTNING_EXTRA}")
    return contents


def _read_sharded(folder: Path) -> Weights:
    """The model's weights gathered from every shard into whole tensors, with what ``meta.pt`` records. The optimizer
    state, as large again or twice, stays on disk."""
    prefix = f"{WEIGHTS}."

    def weights(index: Metadata) -> dict[str, Any]:
        return {
            key: torch.empty(entry.size, dtype=entry.properties.dtype)
            for key, entry in index.state_dict_metadata.items()
            if key.startswith(prefix) and isinstance(entry, TensorStorageMetadata)
        }

    state = {key.removeprefix(prefix): tensor for key, tensor in _load_sharded(folder, weights).items()}
    return _weights({**_lightning_extra(folder), WEIGHTS: state}, folder)


def check_sharded(folder: str | os.PathLike) -> None:
    """Refuse, in one line, a sharded checkpoint folder that holds anything but tensors and plain data, before
    Lightning resumes from it (``--ckpt_path``): Lightning reads its index and its non-tensor entries (the optimizer's
    ``param_groups``) with plain pickle, which runs whatever they name. Here they are read as radford reads any
    checkpoint, with Lightning's ``meta.pt``; the tensors, which torch reads with ``weights_only`` itself, are not."""
    folder = Path(folder)
    _load_sharded(
        folder,
        lambda index: {k: None for k, e in index.state_dict_metadata.items() if isinstance(e, BytesStorageMetadata)},
    )
    _lightning_extra(folder)


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
    """What a radford .ckpt, a sharded checkpoint folder or a model folder in a registered format holds, tensors not
    yet in a model."""
    path = existing(path)
    if is_sharded(path):
        return _read_sharded(path)
    return folder_format(path).read(path) if path.is_dir() else _read_ckpt(path)


def saved_tokenizer(path: str | os.PathLike) -> Tokenizer | None:
    """The tokenizer a radford .ckpt records or a model folder holds; None when there is none."""
    return read_weights(path).tokenizer


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> L.LightningModule:
    """The model a radford .ckpt, a sharded checkpoint folder (``strategy/fsdp``'s) or a model folder (Hugging Face
    GPT-2, OpenAI GPT or CLIP, ...) holds, in eval mode on ``map_location``. A .ckpt or a sharded folder comes back as
    the class that trained it, a model folder as the class its format names (GPT, GPT1, CLIP, ...). The model's
    ``tokenizer`` attribute is the tokenizer saved with it, or None."""
    return read_weights(path).build(path).to(map_location).eval()


def convert(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """A radford .ckpt, a sharded checkpoint folder, or a model folder of another format (OpenAI's GPT-1 release), to a
    model folder of the format its model family exports (a Hugging Face folder for GPT-2 and GPT-1); or a folder (a
    sharded checkpoint gathered into one file) to a .ckpt (a ``dst`` named ``*.ckpt``, or any existing path). Returns
    ``dst``."""
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
    "check_sharded",
    "convert",
    "is_sharded",
    "load",
    "read_checkpoint",
    "read_weights",
    "save_atomically",
    "saved_tokenizer",
    "torch_load",
    "write_checkpoint",
]
