"""Models named by their Hugging Face hub id (``gpt2``, ``openai/clip-vit-base-patch32``, ``org/name@revision``),
downloaded once into the hub cache with ``huggingface_hub`` and read from there as a local model folder.

Rule: a string names a hub model when it is not an existing path and has the shape of a hub id: ``name`` or
``org/name`` (letters, digits, ``-``, ``_``, ``.``; no leading or trailing ``-`` or ``.``), optionally followed by
``@revision`` (a branch, tag or commit), and does not end in a file suffix radford reads (``.ckpt``, ``.bin``, ...).
So ``runs/last.ckpt``, ``./gpt2`` and ``a/b/c`` are paths, a folder named ``gpt2`` in the working directory wins
over the hub's ``gpt2``, and a ``pathlib.Path`` is always a path.

Only the files radford's formats read are downloaded: configs, tokenizer files, and one weights file (safetensors
when the repository has it). ``huggingface_hub`` reads its usual settings: ``HF_HOME`` / ``HF_HUB_CACHE`` (where the
cache is), ``HF_HUB_OFFLINE=1`` (no network: the cache only), ``HF_TOKEN`` (gated models) and
``HF_HUB_DISABLE_PROGRESS_BARS``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from radford.errors import RadfordError

# The files radford's folder formats read (radford.models.hf_folder, gpt_adapter, clip_adapter; tests/test_hub.py
# checks that this covers them), as explicit names at the top of a repository: a pattern like *.json would also
# match files in subfolders such as onnx/. Configs and tokenizer files, and what transformers writes beside them:
METADATA = (
    "config.json",
    "open_clip_config.json",
    "generation_config.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "vocab.json",
    "merges.txt",
    "encoder.json",
    "vocab.bpe",
    "encoder_bpe_40000.json",
    "vocab_40000.bpe",
    "bpe_simple_vocab_16e6.txt.gz",
)
# By the config file that marks a layout, its weights files in order of preference. A repository often holds the
# same weights several times (safetensors, bin, open_clip's): only the first present is fetched.
WEIGHTS = {
    "config.json": ("model.safetensors", "pytorch_model.bin"),
    "open_clip_config.json": (
        "open_clip_model.safetensors",
        "open_clip_pytorch_model.safetensors",
        "open_clip_pytorch_model.bin",
    ),
}
FILE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".safetensors", ".json", ".yaml", ".txt", ".gz", ".bpe")
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
HUB_ID = re.compile(rf"(?P<repo>{_PART}(?:/{_PART})?)(?:@(?P<revision>[\w./-]+))?")


def parse(name: str) -> tuple[str, str | None] | None:
    """``(repo_id, revision)`` of a hub id (revision None for the default branch); None if ``name`` has another
    shape. Whether a path of that name exists is the caller's question."""
    match = HUB_ID.fullmatch(name)
    if match is None or ".." in match["repo"] or "--" in match["repo"] or name.lower().endswith(FILE_SUFFIXES):
        return None
    return match["repo"], match["revision"]


def local_path(name: str | os.PathLike) -> Path:
    """``name`` as a local path: itself when it exists or is not a hub id, else the hub model's folder in the cache,
    downloaded first if need be."""
    path = Path(name).expanduser()
    if path.exists() or not isinstance(name, str):  # a Path object is always a path
        return path
    parsed = parse(name)
    return path if parsed is None else download(*parsed)


def download(repo_id: str, revision: str | None = None) -> Path:
    """The folder of a hub model in the cache: its configs, tokenizer files and one weights file, fetched (with a
    progress bar) unless cached. Errors are one line naming the id."""
    # Imported here: the hub client is needed only for hub ids, and the CLI starts faster without it.
    from huggingface_hub import constants, errors, hf_hub_download, snapshot_download

    name = repo_id if revision is None else f"{repo_id}@{revision}"
    provide = f"or give the path of a model folder (`hf download {repo_id} --local-dir DIR` on a machine with network)"
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=list(METADATA)))
        for config, candidates in WEIGHTS.items():
            if not (folder / config).is_file() or any((folder / file).is_file() for file in candidates):
                continue
            for file in candidates:
                try:
                    # The snapshot's folder name is its commit: the weights join the files already there.
                    hf_hub_download(repo_id, file, revision=folder.name)
                    break
                except errors.RemoteEntryNotFoundError:
                    continue
        return folder
    except errors.GatedRepoError as error:
        raise RadfordError(
            f"{name} is a gated model on the Hugging Face hub: accept its terms on its page and log in "
            "(`hf auth login` or HF_TOKEN)"
        ) from error
    except errors.RepositoryNotFoundError as error:
        raise RadfordError(
            f"{name} is neither a local path nor a model on the Hugging Face hub (or it is private: "
            "log in with `hf auth login` or HF_TOKEN)"
        ) from error
    except errors.RevisionNotFoundError as error:
        raise RadfordError(f"{repo_id} has no revision {revision!r} on the Hugging Face hub") from error
    except errors.LocalEntryNotFoundError as error:
        if constants.HF_HUB_OFFLINE:
            raise RadfordError(
                f"{name} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE "
                f"forbids downloading it: unset HF_HUB_OFFLINE, {provide}"
            ) from error
        raise RadfordError(
            f"cannot download {name} from the Hugging Face hub (no network?) and it is not cached: {provide}"
        ) from error
    except (errors.HfHubHTTPError, OSError) as error:
        detail = " ".join(str(error).split())[:200]
        raise RadfordError(f"cannot download {name} from the Hugging Face hub: {detail}; {provide}") from error


__all__ = ["download", "local_path", "parse"]
