"""radford's public API for plugins: the one module a plugin imports from radford.

Stability promise (semantic versioning): every name in ``__all__`` keeps working, with the same meaning and
compatible signatures, across the minor and patch releases of one major version; a plugin that imports only
from here and declares ``radford>=X.Y,<X+1`` keeps working. Removing or breaking a name takes a major release,
after a release in which it warned (``DeprecationWarning``). Everything else in radford (every other module,
and any name here that starts with ``_``) is internal and may change in any release. ``tests/test_api.py``
checks that radford's own plugin package and the ``radford new-plugin`` template import nothing else.
Importing this module is cheap: each name imports its module (torch, Lightning) on first use.

Errors
    ``RadfordError``: raise it for a mistake a user can make (a bad value in a recipe, a missing file), with one
    line naming the bad value and the valid choices; the CLI prints it without a traceback and exits with 2.

GPT building blocks (GPT-2's layout; parameter names match OpenAI's checkpoints, and so are part of the promise:
``transformer.wte``, ``transformer.wpe``, ``transformer.h[i].{ln_1,attn,ln_2,mlp}``, ``transformer.ln_f``,
``lm_head``)
    ``GPT``: the GPT-2 ``LightningModule`` (training, validation, AdamW + warmup-cosine, ``hidden_states``,
    ``generate`` with a key/value cache). Subclass it with your own defaults; a subclass must accept every
    ``GPT`` argument but ``pretrained`` (``radford.load`` rebuilds a model from all of its hyperparameters).
    ``Block``, ``CausalSelfAttention``, ``MLP``: the transformer block and its two halves, to compose your own.
    ``KVCache``: one layer's key/value cache. ``sample``: one token per row of logits (temperature, top-k,
    top-p). ``adamw``: AdamW decaying matrices only. ``warmup_cosine``: the learning-rate multiplier.

Tokenizers
    ``Tokenizer``: the base of radford's text tokenizers (a Hugging Face ``tokenizers`` backend, serialised in
    checkpoints). Subclass it for text; a tokenizer of something else (pixels, audio) needs no base class.

Images (Pillow only)
    ``open_image``, ``resize_center_crop``, ``to_tensor``, ``normalize``: decode, bicubic resize and centre
    crop, ``(C, H, W)`` float tensors in [0, 1], per-channel normalisation.

Data
    ``dataset_path(name_or_path)``: a dataset by name (``mnist``, ``tinyshakespeare``, ``sst2/train``, ...) as the local
    file, downloaded once and checked (``RADFORD_DATASETS_MIRROR`` for machines without network); a path passes
    through.

Evaluation
    ``linear_probe``: logistic regression on frozen features with C chosen on a validation split;
    ``ProbeResult`` is what it returns.

Checkpoints
    ``load``: the model in a radford ``.ckpt`` (as the class that trained it, with its tokenizer) or a Hugging
    Face GPT folder.

Registry, recipes and the command line
    ``Plugin``, ``PluginLoadError``: an entry point, and the error raised when its code fails to import.
    ``lookup(kind, name)``, ``plugin_names(kind)``, ``plugins(kind)``: a registered plugin, the names of one
    kind (``models``, ``data``, ``tokenizers``, ``recipes``), and the winning plugin of each name; all three see
    only the plugins that the ``RADFORD_PLUGINS`` environment variable enables (unset: all).
    ``list_recipes()``, ``find_recipe(name)``: every recipe (a ``Recipe``: name, path, distribution,
    description), and a recipe's file by name.
    ``cli(argv)``: the ``radford`` command in this process, as the console script runs it.
"""

from __future__ import annotations

import importlib
from typing import Any

# Where each public name lives. Resolved on first use (vLLM's `vllm/__init__.py` does the same), so that
# `import radford.api` costs no torch or Lightning import: a plugin's listing and its light helpers stay fast.
_EXPORTS = {
    "GPT": "radford.models.gpt:GPT",
    "MLP": "radford.models.gpt:MLP",
    "Block": "radford.models.gpt:Block",
    "CausalSelfAttention": "radford.models.gpt:CausalSelfAttention",
    "KVCache": "radford.models.gpt:KVCache",
    "Plugin": "radford.registry:Plugin",
    "PluginLoadError": "radford.registry:PluginLoadError",
    "ProbeResult": "radford.eval.probe:ProbeResult",
    "RadfordError": "radford.errors:RadfordError",
    "Recipe": "radford.recipes:Recipe",
    "Tokenizer": "radford.tokenizers:Tokenizer",
    "adamw": "radford.models.common:adamw",
    "cli": "radford.cli:main",
    "find_recipe": "radford.recipes:find",
    "dataset_path": "radford.data.datasets:resolve",
    "linear_probe": "radford.eval.probe:linear_probe",
    "list_recipes": "radford.recipes:list_recipes",
    "load": "radford.checkpoints:load",
    "lookup": "radford.registry:lookup",
    "normalize": "radford.data.pixels:normalize",
    "open_image": "radford.data.pixels:open_image",
    "plugin_names": "radford.registry:names",
    "plugins": "radford.registry:plugins",
    "resize_center_crop": "radford.data.pixels:resize_center_crop",
    "sample": "radford.models.common:sample",
    "to_tensor": "radford.data.pixels:to_tensor",
    "warmup_cosine": "radford.models.common:warmup_cosine",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, _, attr = _EXPORTS[name].partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
