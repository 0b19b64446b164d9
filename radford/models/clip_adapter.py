"""CLIP checkpoints in the layouts they are published in, read as radford's CLIP, whose parameter names are those of
OpenAI's ``clip/model.py``: Hugging Face's ``CLIPModel`` folders (OpenAI's released ViTs and LAION's on the hub) and
open_clip's own (``open_clip_config.json`` with ``open_clip_model.safetensors`` or ``open_clip_pytorch_model.bin``,
the form LAION publishes, ViTs and modified ResNets alike). open_clip keeps OpenAI's names, so only its config needs
reading; a config radford's CLIP cannot compute is refused in one line naming the setting."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import lightning as L
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from radford.checkpoints import Weights, torch_load
from radford.errors import RadfordError
from radford.models.clip import CLIP
from radford.models.hf_folder import HF_CONFIG, HF_WEIGHTS, TOKENIZER_FILES, read_config, read_hf_weights
from radford.tokenizers.clip import CLIPTokenizer

OPEN_CLIP_CONFIG = "open_clip_config.json"
# In the order looked for (open_clip's own order).
OPEN_CLIP_WEIGHTS = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
)
OPENAI_MERGES_FILE = "bpe_simple_vocab_16e6.txt.gz"  # CLIP's vocabulary as OpenAI and open_clip ship it

# transformers' CLIPTextConfig/CLIPVisionConfig defaults (config.json stores only what differs from them).
HF_TEXT_DEFAULTS = dict(
    vocab_size=49408,
    hidden_size=512,
    intermediate_size=2048,
    num_hidden_layers=12,
    num_attention_heads=8,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
    eos_token_id=49407,
)
HF_VISION_DEFAULTS = dict(
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    num_channels=3,
    image_size=224,
    patch_size=32,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
)
# HF names to radford's (OpenAI's), applied in order; q, k and v projections are then stacked into in_proj.
HF_RENAMES = (
    (r"^text_model\.embeddings\.token_embedding\.", "token_embedding."),
    (r"^text_model\.embeddings\.position_embedding\.weight$", "positional_embedding"),
    (r"^text_model\.encoder\.layers\.", "transformer.resblocks."),
    (r"^text_model\.final_layer_norm\.", "ln_final."),
    (r"^vision_model\.embeddings\.class_embedding$", "visual.class_embedding"),
    (r"^vision_model\.embeddings\.patch_embedding\.", "visual.conv1."),
    (r"^vision_model\.embeddings\.position_embedding\.weight$", "visual.positional_embedding"),
    (r"^vision_model\.pre_layrnorm\.", "visual.ln_pre."),  # sic
    (r"^vision_model\.encoder\.layers\.", "visual.transformer.resblocks."),
    (r"^vision_model\.post_layernorm\.", "visual.ln_post."),
    (r"\.self_attn\.out_proj\.", ".attn.out_proj."),
    (r"\.layer_norm1\.", ".ln_1."),
    (r"\.layer_norm2\.", ".ln_2."),
    (r"\.mlp\.fc1\.", ".mlp.c_fc."),
    (r"\.mlp\.fc2\.", ".mlp.c_proj."),
    (r"^text_projection\.weight$", "text_projection"),  # a Linear's (out, in) weight; OpenAI's x @ proj is (in, out)
    (r"^visual_projection\.weight$", "visual.proj"),
)
HF_TRANSPOSED = ("text_projection", "visual.proj")


def architecture_from_hf(config: dict[str, Any]) -> dict[str, Any]:
    """CLIP's architecture arguments from a Hugging Face ``CLIPModel`` config.json, checked to be one radford
    computes exactly (transformers' CLIP is always a ViT)."""
    architectures = config.get("architectures") or ["CLIPModel"]
    if architectures != ["CLIPModel"]:
        raise RadfordError(f"config.json names architectures {architectures}; radford loads CLIPModel")
    text = {**HF_TEXT_DEFAULTS, **(config.get("text_config") or {})}
    vision = {**HF_VISION_DEFAULTS, **(config.get("vision_config") or {})}
    for name, part in (("text_config", text), ("vision_config", vision)):
        # One activation and one epsilon serve both encoders, as in every CLIP published.
        if part["hidden_act"] not in ("quick_gelu", "gelu") or part["hidden_act"] != text["hidden_act"]:
            raise RadfordError(
                f"config.json's {name} sets hidden_act {part['hidden_act']!r}; radford's CLIP computes "
                "'quick_gelu' or 'gelu', the same in both encoders"
            )
        if part["layer_norm_eps"] != text["layer_norm_eps"]:
            raise RadfordError(
                f"config.json's {name} sets layer_norm_eps {part['layer_norm_eps']}, the text's "
                f"{text['layer_norm_eps']}; radford's CLIP uses one epsilon in both encoders"
            )
    if vision["num_channels"] != 3:
        raise RadfordError(
            f"config.json's vision_config has num_channels {vision['num_channels']}; radford's CLIP "
            "reads RGB images (3)"
        )
    # transformers reads the text's features at the largest id when eos_token_id is 2 (its old configs), else at
    # the first eos_token_id; both are radford's argmax when the end-of-text token is the largest id.
    if text["eos_token_id"] not in (2, text["vocab_size"] - 1):
        raise RadfordError(
            f"config.json's text_config has eos_token_id {text['eos_token_id']}; radford reads a text's "
            f"features at its largest id, which needs 2 or {text['vocab_size'] - 1}"
        )
    return dict(
        embed_dim=config.get("projection_dim", 512),
        image_size=vision["image_size"],
        vision_layers=vision["num_hidden_layers"],
        vision_width=vision["hidden_size"],
        vision_heads=vision["num_attention_heads"],
        patch_size=vision["patch_size"],
        context_length=text["max_position_embeddings"],
        vocab_size=text["vocab_size"],
        text_width=text["hidden_size"],
        text_heads=text["num_attention_heads"],
        text_layers=text["num_hidden_layers"],
        vision_mlp_width=vision["intermediate_size"],
        text_mlp_width=text["intermediate_size"],
        quick_gelu=text["hidden_act"] == "quick_gelu",
        layer_norm_eps=text["layer_norm_eps"],
    )


def state_dict_from_hf(hf_sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """CLIP's state dict (OpenAI's names) from a Hugging Face ``CLIPModel`` one."""
    sd: dict[str, Tensor] = {}
    qkv: dict[str, dict[str, Tensor]] = {}
    for key, value in hf_sd.items():
        if key.endswith("position_ids"):  # a buffer of 0..n-1 in older checkpoints
            continue
        for pattern, replacement in HF_RENAMES:
            key = re.sub(pattern, replacement, key)
        projection = re.match(r"(.*)\.self_attn\.([qkv])_proj\.(weight|bias)$", key)
        if projection:
            prefix, which, kind = projection.groups()
            qkv.setdefault(f"{prefix}.attn.in_proj_{kind}", {})[which] = value
            continue
        sd[key] = value.t().contiguous() if key in HF_TRANSPOSED else value
    for key, parts in qkv.items():
        sd[key] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return sd


# -- open_clip ---------------------------------------------------------------------------------------------------

# open_clip's CLIPVisionCfg / CLIPTextCfg defaults (its config files store only what differs from them).
OPEN_CLIP_VISION_DEFAULTS = dict(layers=12, width=768, head_width=64, mlp_ratio=4.0, patch_size=16, image_size=224)
OPEN_CLIP_TEXT_DEFAULTS = dict(context_length=77, vocab_size=49408, width=512, heads=8, layers=12, mlp_ratio=4.0)
# Settings that change what open_clip computes, with the values that mean OpenAI's architecture (its defaults): any
# other value is refused. Layer norm after pooling one token is the same as before it, so either value is OpenAI's.
_BLOCK = dict(
    ls_init_value=(None,),
    act_kwargs=(None,),
    block_type=(None, "default"),
    qk_norm=(False,),
    scaled_cosine_attn=(False,),
    scale_heads=(False,),
    scale_attn_inner=(False,),
    scale_attn=(False,),
    scale_fc=(False,),
    final_ln_after_pool=(False, True),
)
OPEN_CLIP_FIXED = {
    "model_cfg": dict(init_logit_bias=(None,), nonscalar_logit_scale=(False,), multimodal_cfg=(None,)),
    "vision_cfg": dict(
        _BLOCK,
        timm_model_name=(None,),
        attentional_pool=(False,),
        no_ln_pre=(False,),
        pos_embed_type=("learnable",),
        pool_type=("tok",),
    ),
    "text_cfg": dict(
        _BLOCK,
        hf_model_name=(None,),
        embed_cls=(False,),
        no_causal_mask=(False,),
        pool_type=("argmax",),
        proj_bias=(False,),
        proj_type=("linear",),
    ),
}
# Settings that do not change the weights or what a trained model computes (training, initialisation, precision,
# outputs, and options of the refused timm and Hugging Face towers), or that radford reads itself (norm_kwargs).
OPEN_CLIP_FREE = {
    "model_cfg": {
        "embed_dim",
        "vision_cfg",
        "text_cfg",
        "quick_gelu",
        "custom_text",
        "init_logit_scale",
        "cast_dtype",
        "output_dict",
    },
    "vision_cfg": {
        *OPEN_CLIP_VISION_DEFAULTS,
        "norm_kwargs",
        "patch_dropout",
        "output_tokens",
        "attn_pooler_queries",
        "attn_pooler_heads",
        "timm_model_pretrained",
        "timm_pool",
        "timm_proj",
        "timm_proj_bias",
        "timm_drop",
        "timm_drop_path",
    },
    # The tokenizer is read from the folder's files; eos_id and pad_id serve pool types radford refuses.
    "text_cfg": {
        *OPEN_CLIP_TEXT_DEFAULTS,
        "norm_kwargs",
        "output_tokens",
        "hf_tokenizer_name",
        "tokenizer_mode",
        "tokenizer_kwargs",
        "eos_id",
        "pad_id",
        "hf_model_pretrained",
        "hf_proj_type",
        "hf_pooler_type",
    },
}


def _check_open_clip(name: str, part: dict[str, Any]) -> None:
    for key, value in part.items():
        allowed = OPEN_CLIP_FIXED[name].get(key)
        if allowed is not None and value not in allowed:
            raise RadfordError(
                f"{OPEN_CLIP_CONFIG}'s {name} sets {key} {value!r}, which radford's CLIP does not "
                f"compute (it computes OpenAI's architecture: {key} {allowed[0]!r})"
            )
        if allowed is None and key not in OPEN_CLIP_FREE[name]:
            raise RadfordError(
                f"{OPEN_CLIP_CONFIG}'s {name} has the setting {key!r}, which radford does not know; "
                f"it reads: {', '.join(sorted(OPEN_CLIP_FREE[name] | OPEN_CLIP_FIXED[name].keys()))}"
            )


def _side(value: int | list[int], name: str) -> int:
    """An image or patch side: open_clip also takes (height, width), which radford's square images need equal."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise RadfordError(f"{OPEN_CLIP_CONFIG}'s vision_cfg has {name} {value}; radford's CLIP is square")
        return value[0]
    return value


def _eps(vision: dict[str, Any], text: dict[str, Any]) -> float:
    """The layer norms' epsilon (open_clip's norm_kwargs; torch's 1e-5 by default), one for both encoders."""
    found = []
    for name, part in (("vision_cfg", vision), ("text_cfg", text)):
        kwargs = part.get("norm_kwargs") or {}
        if set(kwargs) - {"eps"}:
            raise RadfordError(f"{OPEN_CLIP_CONFIG}'s {name} sets norm_kwargs {kwargs}; radford's CLIP reads eps only")
        found.append(kwargs.get("eps", 1e-5))
    if found[0] != found[1]:
        raise RadfordError(
            f"{OPEN_CLIP_CONFIG} gives the vision tower layer norm eps {found[0]} and the text tower "
            f"{found[1]}; radford's CLIP uses one epsilon in both encoders"
        )
    return found[0]


def architecture_from_open_clip(config: dict[str, Any]) -> dict[str, Any]:
    """CLIP's architecture arguments from an ``open_clip_config.json`` (its ``model_cfg``), checked to be one radford
    computes exactly: OpenAI's ViT or modified ResNet with open_clip's widths, activation and epsilon."""
    model = config.get("model_cfg")
    if (
        not isinstance(model, dict)
        or not isinstance(model.get("vision_cfg"), dict)
        or not isinstance(model.get("text_cfg"), dict)
        or "embed_dim" not in model
    ):
        raise RadfordError(f"{OPEN_CLIP_CONFIG} has no model_cfg with embed_dim, vision_cfg and text_cfg")
    vision = {**OPEN_CLIP_VISION_DEFAULTS, **model["vision_cfg"]}
    text = {**OPEN_CLIP_TEXT_DEFAULTS, **model["text_cfg"]}
    for name, part in (("model_cfg", model), ("vision_cfg", vision), ("text_cfg", text)):
        _check_open_clip(name, part)
    resnet = isinstance(vision["layers"], (list, tuple))
    width = vision["width"]
    # open_clip's heads: 64-wide by default; the ResNet's attention pool is 32 x width wide.
    arch = dict(
        embed_dim=model["embed_dim"],
        image_size=_side(vision["image_size"], "image_size"),
        vision_layers=tuple(vision["layers"]) if resnet else vision["layers"],
        vision_width=width,
        vision_heads=width * (32 if resnet else 1) // vision["head_width"],
        patch_size=None if resnet else _side(vision["patch_size"], "patch_size"),
        vision_mlp_width=None if resnet else int(width * vision["mlp_ratio"]),
        context_length=text["context_length"],
        vocab_size=text["vocab_size"],
        text_width=text["width"],
        text_heads=text["heads"],
        text_layers=text["layers"],
        text_mlp_width=int(text["width"] * text["mlp_ratio"]),
    )
    return dict(arch, quick_gelu=bool(model.get("quick_gelu", False)), layer_norm_eps=_eps(vision, text))


def state_dict_from_open_clip(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """CLIP's state dict from open_clip's: the same names, but the text tower of open_clip's ``CustomTextCLIP``
    (``custom_text: true``) sits under ``text.``."""
    return {key.removeprefix("text."): value for key, value in sd.items()}


def _read_open_clip_weights(folder: Path) -> dict[str, Tensor]:
    file = next((folder / name for name in OPEN_CLIP_WEIGHTS if (folder / name).is_file()), None)
    if file is None:
        raise RadfordError(f"no weights in {folder}: looked for {' or '.join(OPEN_CLIP_WEIGHTS)}")
    if file.suffix != ".safetensors":
        return torch_load(file)
    try:
        return load_file(file)
    except (SafetensorError, OSError) as error:
        raise RadfordError(f"cannot read weights {file}: truncated or corrupt ({error})") from error


# -- the formats --------------------------------------------------------------------------------------------------


def _clip_weights(folder: Path, arch: dict[str, Any], state_dict: dict[str, Tensor]) -> Weights:
    """A CLIP's Weights with the tokenizer whose files the folder holds, if any."""
    tokenizer = None
    if (folder / OPENAI_MERGES_FILE).is_file():
        tokenizer = CLIPTokenizer(str(folder / OPENAI_MERGES_FILE))
    elif _has_any(folder, TOKENIZER_FILES):
        tokenizer = CLIPTokenizer(str(folder))
    # The size only fills what is not given, and every architecture argument is given.
    size = "RN50" if isinstance(arch["vision_layers"], tuple) else "ViT-B/32"
    return Weights(CLIP, dict(size=size, warmup_steps=0, **arch), state_dict, tokenizer)


def _has_any(folder: Path, names: tuple[str, ...]) -> bool:
    return any((folder / name).is_file() for name in names)


class HFCLIPFolder:
    """The ``radford.formats`` entry for Hugging Face ``CLIPModel`` folders."""

    description = "a Hugging Face CLIP folder (config.json with model_type clip)"

    def detect(self, folder: Path) -> bool:
        # LAION's repositories hold both layouts: without Hugging Face weights, the folder is open_clip's.
        return (
            (folder / HF_CONFIG).is_file()
            and read_config(folder).get("model_type") == "clip"
            and (_has_any(folder, HF_WEIGHTS) or not _has_any(folder, OPEN_CLIP_WEIGHTS))
        )

    def read(self, folder: Path) -> Weights:
        arch = architecture_from_hf(read_config(folder))
        try:
            state_dict = state_dict_from_hf(read_hf_weights(folder))
        except (KeyError, AttributeError) as error:
            raise RadfordError(f"the weights in {folder} are not a CLIPModel's: no {error}") from error
        return _clip_weights(folder, arch, state_dict)

    def exports(self, model_class: type[L.LightningModule]) -> bool:
        return False

    def export(self, weights: Weights, folder: Path) -> None:
        raise NotImplementedError


class OpenCLIPFolder:
    """The ``radford.formats`` entry for open_clip's folders (``open_clip_config.json`` and its weights)."""

    description = f"an open_clip folder ({OPEN_CLIP_CONFIG} with {' or '.join(OPEN_CLIP_WEIGHTS)})"

    def detect(self, folder: Path) -> bool:
        return (folder / OPEN_CLIP_CONFIG).is_file() and not HF_CLIP.detect(folder)

    def read(self, folder: Path) -> Weights:
        file = folder / OPEN_CLIP_CONFIG
        try:
            config = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise RadfordError(f"cannot read {file}: {error}") from error
        if not isinstance(config, dict):
            raise RadfordError(f"{file} holds a {type(config).__name__}, not a JSON object")
        arch = architecture_from_open_clip(config)
        return _clip_weights(folder, arch, state_dict_from_open_clip(_read_open_clip_weights(folder)))

    def exports(self, model_class: type[L.LightningModule]) -> bool:
        return False

    def export(self, weights: Weights, folder: Path) -> None:
        raise NotImplementedError


HF_CLIP = HFCLIPFolder()
OPEN_CLIP = OpenCLIPFolder()
