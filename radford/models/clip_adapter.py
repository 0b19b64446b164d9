"""CLIP checkpoints in Hugging Face's ``CLIPModel`` layout (OpenAI's released ViT models on the hub), read as
radford's CLIP, whose parameter names are those of OpenAI's ``clip/model.py``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from radford.checkpoints import Weights
from radford.errors import RadfordError
from radford.models.clip import CLIP
from radford.models.hf_folder import HF_CONFIG, TOKENIZER_FILES, read_config, read_hf_weights
from radford.tokenizers.clip import CLIPTokenizer

# transformers' CLIPTextConfig/CLIPVisionConfig defaults (config.json stores only what differs from them).
HF_TEXT_DEFAULTS = dict(vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                        num_attention_heads=8, max_position_embeddings=77, hidden_act="quick_gelu",
                        layer_norm_eps=1e-5, eos_token_id=49407)
HF_VISION_DEFAULTS = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                          num_channels=3, image_size=224, patch_size=32, hidden_act="quick_gelu", layer_norm_eps=1e-5)
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
        if part["hidden_act"] not in ("quick_gelu", "gelu") or part["hidden_act"] != text["hidden_act"]:
            raise RadfordError(f"config.json's {name} sets hidden_act {part['hidden_act']!r}; radford's CLIP computes "
                               "'quick_gelu' or 'gelu', the same in both encoders")
        if part["intermediate_size"] != 4 * part["hidden_size"] or part["layer_norm_eps"] != 1e-5:
            raise RadfordError(f"config.json's {name} has intermediate_size {part['intermediate_size']} and "
                               f"layer_norm_eps {part['layer_norm_eps']}; radford's CLIP computes 4 x hidden_size "
                               "and 1e-5")
    # transformers reads the text's features at the largest id when eos_token_id is 2 (its old configs), else at
    # the first eos_token_id; both are radford's argmax when the end-of-text token is the largest id.
    if text["eos_token_id"] not in (2, text["vocab_size"] - 1):
        raise RadfordError(f"config.json's text_config has eos_token_id {text['eos_token_id']}; radford reads a text's "
                           f"features at its largest id, which needs 2 or {text['vocab_size'] - 1}")
    return dict(embed_dim=config.get("projection_dim", 512), image_size=vision["image_size"],
                vision_layers=vision["num_hidden_layers"], vision_width=vision["hidden_size"],
                vision_heads=vision["num_attention_heads"], patch_size=vision["patch_size"],
                context_length=text["max_position_embeddings"], vocab_size=text["vocab_size"],
                text_width=text["hidden_size"], text_heads=text["num_attention_heads"],
                text_layers=text["num_hidden_layers"], quick_gelu=text["hidden_act"] == "quick_gelu")


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


class HFCLIPFolder:
    """The ``radford.formats`` entry for Hugging Face ``CLIPModel`` folders."""

    description = "a Hugging Face CLIP folder (config.json with model_type clip)"

    def detect(self, folder: Path) -> bool:
        return (folder / HF_CONFIG).is_file() and read_config(folder).get("model_type") == "clip"

    def read(self, folder: Path) -> Weights:
        arch = architecture_from_hf(read_config(folder))
        try:
            state_dict = state_dict_from_hf(read_hf_weights(folder))
        except (KeyError, AttributeError) as error:
            raise RadfordError(f"the weights in {folder} are not a CLIPModel's: no {error}") from error
        has_tokenizer = any((folder / name).is_file() for name in TOKENIZER_FILES)
        # The size only fills what is not given, and every architecture argument is given.
        hparams = dict(size="ViT-B/32", warmup_steps=0, **arch)
        return Weights(CLIP, hparams, state_dict, CLIPTokenizer(str(folder)) if has_tokenizer else None)

    def exports(self, model_class: type[L.LightningModule]) -> bool:
        return False

    def export(self, weights: Weights, folder: Path) -> None:
        raise NotImplementedError


HF_CLIP = HFCLIPFolder()
