"""GPT checkpoints in Hugging Face's layouts: ``GPT2LMHeadModel`` (GPT-2) and ``OpenAIGPTLMHeadModel`` (GPT-1), in
which OpenAI's released weights are published. A folder is ``config.json`` with ``model.safetensors`` (or
``pytorch_model.bin``) and optionally the tokenizer's files. radford keeps GPT-2's parameter names for both
families, so a conversion is a rename table and the transposition of HF's ``Conv1D`` weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from safetensors.torch import save_file
from torch import Tensor

from radford.checkpoints import Weights
from radford.errors import RadfordError
from radford.io import write_atomically
from radford.models.gpt import ARCHITECTURE, GPT, GPT1
from radford.models.hf_folder import HF_CONFIG, HF_WEIGHTS, folder_tokenizer, read_config, read_hf_weights
from radford.tokenizers import TOKENIZER_JSON
from radford.tokenizers.export import MERGES, TOKENIZER_CONFIG, VOCAB, hf_tokenizer_files

# HF's GPT models use Conv1D, which stores a Linear weight transposed: (in_features, out_features).
TRANSPOSED = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")
# Buffers in older HF checkpoints: causal masks (scaled_dot_product_attention builds its own) and positions.
BUFFERS = (".attn.bias", ".attn.masked_bias", "position_ids")
# OpenAI's checkpoints on the hub are saved from GPT2Model/OpenAIGPTModel, whose keys lack this prefix and lm_head.
PREFIX = "transformer."
GENERATION_CONFIG = "generation_config.json"
# What an export writes beside the weights, and removes when it has none of them: a stale tokenizer would be taken
# for this model's.
EXPORTED_TOKENIZER_FILES = (TOKENIZER_JSON, VOCAB, MERGES, TOKENIZER_CONFIG)


@dataclass(frozen=True)
class Family:
    """A Hugging Face model type radford reads and writes."""

    model_class: type[GPT]
    architectures: tuple[str, ...]  # what config.json may name; conversion writes the first
    # HF names that differ from radford's (GPT-1's differ only in the embeddings).
    renames: dict[str, str]
    # config.json settings radford's architecture fixes, with the values that mean it; conversion writes the
    # first. A checkpoint with another value would load without error and compute something else.
    fixed: dict[str, tuple[Any, ...]]


FAMILIES = {
    "gpt2": Family(
        GPT,
        ("GPT2LMHeadModel", "GPT2Model"),
        renames={},
        fixed={
            "activation_function": ("gelu_new", "gelu_pytorch_tanh"),
            "layer_norm_epsilon": (1e-5,),
            "n_inner": (None,),
            "scale_attn_weights": (True,),
            "scale_attn_by_inverse_layer_idx": (False,),
        },
    ),
    # HF's OpenAI GPT calls GELU's tanh approximation "gelu" (GPT2's "gelu_new").
    "openai-gpt": Family(
        GPT1,
        ("OpenAIGPTLMHeadModel", "OpenAIGPTModel"),
        renames={
            "transformer.tokens_embed.weight": "transformer.wte.weight",
            "transformer.positions_embed.weight": "transformer.wpe.weight",
        },
        fixed={"afn": ("gelu",), "layer_norm_epsilon": (1e-5,)},
    ),
}


def state_dict_from_hf(hf_sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """GPT's state dict from a Hugging Face GPT2LMHeadModel, GPT2Model, OpenAIGPTLMHeadModel or OpenAIGPTModel one."""
    renames = {hf: ours for family in FAMILIES.values() for hf, ours in family.renames.items()}
    sd = {}
    for key, value in hf_sd.items():
        if key.endswith(BUFFERS):
            continue
        key = key if key.startswith((PREFIX, "lm_head.")) else PREFIX + key
        key = renames.get(key, key)
        sd[key] = value.t().contiguous() if key.endswith(TRANSPOSED) else value
    # lm_head is tied to the token embedding and absent from GPT2Model/OpenAIGPTModel checkpoints.
    sd.setdefault("lm_head.weight", sd[PREFIX + "wte.weight"])
    return sd


def state_dict_to_hf(sd: dict[str, Tensor], model_type: str = "gpt2") -> dict[str, Tensor]:
    """A Hugging Face GPT2LMHeadModel ("gpt2") or OpenAIGPTLMHeadModel ("openai-gpt") state dict from GPT's;
    lm_head.weight is the token embedding, tied."""
    if model_type not in FAMILIES:
        raise RadfordError(f"unknown model_type {model_type!r}; choose from: {', '.join(FAMILIES)}")
    # Only GPT-2 has a final LayerNorm: writing one family's weights in the other's layout would drop or miss it.
    family = "gpt2" if PREFIX + "ln_f.weight" in sd else "openai-gpt"
    if model_type != family:
        raise RadfordError(
            f"model_type {model_type!r} does not fit these weights, which are {family!r} "
            f"(a final LayerNorm only in gpt2)"
        )
    renames = {ours: hf for hf, ours in FAMILIES[model_type].renames.items()}
    hf_sd = {
        renames.get(key, key): value.t().contiguous() if key.endswith(TRANSPOSED) else value
        for key, value in sd.items()
    }
    hf_sd["lm_head.weight"] = sd[PREFIX + "wte.weight"]
    return hf_sd


def _checked_config(folder: Path) -> tuple[Family, dict[str, Any]]:
    config = read_config(folder)
    model_type = config.get("model_type")
    family = FAMILIES[model_type]
    file = folder / HF_CONFIG
    for architecture in config.get("architectures") or ():
        if architecture not in family.architectures:
            raise RadfordError(
                f"{file} names architecture {architecture!r}, which radford does not load; "
                f"supported for {model_type}: {', '.join(family.architectures)}"
            )
    for key, values in family.fixed.items():
        if config.get(key, values[0]) not in values:
            raise RadfordError(
                f"{file} sets {key} to {config[key]!r}; radford's {model_type} computes "
                f"{' or '.join(map(repr, values))}"
            )
    absent = [key for key in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head") if key not in config]
    if absent:
        raise RadfordError(f"{file} lacks {', '.join(absent)}: a {model_type} config.json names its architecture")
    return family, config


def _check_fits(folder: Path, arch: dict[str, Any], state_dict: dict[str, Tensor]) -> None:
    """Weights that do not fit the architecture beside them: say which, rather than torch's list."""
    with torch.device("meta"):  # shapes only: no memory, no init
        expected = GPT(**arch).state_dict()
    problems = [f"{key} is missing" for key in sorted(expected.keys() - state_dict.keys())]
    problems += [f"{key} is unexpected" for key in sorted(state_dict.keys() - expected.keys())]
    problems += [
        f"{key} is {tuple(state_dict[key].shape)}, not {tuple(expected[key].shape)}"
        for key in sorted(expected.keys() & state_dict.keys())
        if state_dict[key].shape != expected[key].shape
    ]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise RadfordError(
            f"weights in {folder} do not fit the architecture of its {HF_CONFIG} ({arch}): {problems[0]}{more}"
        )


class HFGPTFolder:
    """The ``radford.formats`` entry for Hugging Face GPT-2 and OpenAI GPT folders."""

    description = "a Hugging Face GPT-2 or OpenAI GPT folder (config.json with model_type gpt2 or openai-gpt)"

    def detect(self, folder: Path) -> bool:
        return (folder / HF_CONFIG).is_file() and read_config(folder).get("model_type") in FAMILIES

    def read(self, folder: Path) -> Weights:
        family, config = _checked_config(folder)
        arch = {
            "vocab_size": config["vocab_size"],
            "block_size": config["n_positions"],
            "n_layer": config["n_layer"],
            "n_head": config["n_head"],
            "n_embd": config["n_embd"],
            "bias": True,
            "post_norm": family.model_class is GPT1,
        }
        try:
            state_dict = state_dict_from_hf(read_hf_weights(folder))
        except (KeyError, AttributeError) as error:  # no token embedding, or not a dict of tensors
            raise RadfordError(
                f"the weights in {folder} are not a {config['model_type']} model's: no {error}"
            ) from error
        # radford's output layer is the token embedding, as OpenAI's; an untied one would be silently replaced.
        if not torch.equal(state_dict["lm_head.weight"], state_dict[PREFIX + "wte.weight"]):
            raise RadfordError(
                f"{folder} has an output layer (lm_head) other than its token embedding "
                "(tie_word_embeddings: false); radford's GPT ties them, as OpenAI's models do"
            )
        _check_fits(folder, arch, state_dict)
        return Weights(family.model_class, arch, state_dict, folder_tokenizer(folder))

    def exports(self, model_class: type[L.LightningModule]) -> bool:
        return issubclass(model_class, GPT)

    def export(self, weights: Weights, folder: Path) -> None:
        arch = {name: weights.hparams[name] for name in ARCHITECTURE}
        if not arch["bias"]:
            raise RadfordError("a model with bias=False has no Hugging Face equivalent: GPT-2 and GPT-1 have biases")
        model_type = "openai-gpt" if arch["post_norm"] else "gpt2"
        family = FAMILIES[model_type]
        # GPT2Config's default end-of-text id is GPT-2's 50256, which another vocabulary may not have.
        eot = weights.tokenizer.eot_id if weights.tokenizer is not None else None
        config = {
            "model_type": model_type,
            "architectures": [family.architectures[0]],
            "vocab_size": arch["vocab_size"],
            "n_positions": arch["block_size"],
            "n_embd": arch["n_embd"],
            "n_layer": arch["n_layer"],
            "n_head": arch["n_head"],
            "tie_word_embeddings": True,
            "bos_token_id": eot,
            "eos_token_id": eot,
            **{key: values[0] for key, values in family.fixed.items()},
        }
        hf_sd = state_dict_to_hf(weights.state_dict, model_type)
        # lm_head is wte (tied); safetensors refuses two names for one tensor, and transformers ties it again on load.
        del hf_sd["lm_head.weight"]
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(
            folder / HF_WEIGHTS[0],
            lambda tmp: save_file(
                {key: value.contiguous() for key, value in hf_sd.items()}, tmp, metadata={"format": "pt"}
            ),
        )
        # The tokenizer's files as transformers reads them back (AutoTokenizer, pipeline), and generate's defaults.
        files = {} if weights.tokenizer is None else hf_tokenizer_files(weights.tokenizer, arch["block_size"])
        files[GENERATION_CONFIG] = json.dumps({"bos_token_id": eot, "eos_token_id": eot} if eot is not None else {})
        for name, text in files.items():
            write_atomically(folder / name, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
        for name in EXPORTED_TOKENIZER_FILES:
            if name not in files:
                (folder / name).unlink(missing_ok=True)
        # Last, so that a folder with a config.json has the weights it describes.
        write_atomically(folder / HF_CONFIG, lambda tmp: tmp.write_text(json.dumps(config, indent=2), encoding="utf-8"))


HF_GPT = HFGPTFolder()
