"""open_clip's checkpoint layout (``open_clip_config.json`` + ``open_clip_model.safetensors`` or
``open_clip_pytorch_model.bin``, as LAION publishes its models): image and text embeddings within 1e-4 of
``open_clip_torch``'s own model (random weights, tiny ViTs and a modified ResNet, wide MLPs, another epsilon), and one
line for each config radford cannot compute. Folders written from radford's own weights test the reading where
open_clip is not installed."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
from safetensors.torch import save_file

import radford
from radford.errors import RadfordError
from radford.models.clip import CLIP
from radford.models.clip_adapter import HF_CLIP, OPEN_CLIP, OPEN_CLIP_CONFIG, architecture_from_open_clip
from tests.test_clip import batch

# Tiny configs in open_clip's schema: a ViT with LAION's wide MLPs (ViT-bigG/14's mlp_ratio), another epsilon, OpenAI's
# activation and the text tower of open_clip's CustomTextCLIP; a GELU ViT of (height, width) sizes; a modified ResNet.
CONFIGS = {
    "vit_wide_mlp_eps": dict(
        embed_dim=24,
        quick_gelu=True,
        custom_text=True,
        vision_cfg=dict(
            image_size=32, layers=2, width=52, head_width=13, mlp_ratio=4.9231, patch_size=8, norm_kwargs=dict(eps=1e-3)
        ),
        text_cfg=dict(
            context_length=16, vocab_size=99, width=32, heads=4, layers=2, mlp_ratio=3.0, norm_kwargs=dict(eps=1e-3)
        ),
    ),
    "vit_gelu": dict(
        embed_dim=16,
        vision_cfg=dict(image_size=[28, 28], layers=1, width=40, head_width=8, patch_size=[7, 7]),
        text_cfg=dict(context_length=12, vocab_size=64, width=24, heads=2, layers=3),
    ),
    "resnet": dict(
        embed_dim=32,
        quick_gelu=True,
        vision_cfg=dict(image_size=64, layers=[1, 2, 1, 1], width=16, patch_size=None),
        text_cfg=dict(context_length=10, vocab_size=50, width=32, heads=4, layers=1),
    ),
}


@pytest.fixture(scope="module")
def open_clip():
    """open_clip_torch, the reference (not a radford dependency: skipped where it is not installed).

    open_clip imports torchvision when imported, for its image transforms and torchvision's FrozenBatchNorm2d; building
    a model and its forward pass use neither. Where torchvision is missing or does not load (a CUDA build beside a CPU
    torch has no ops), stand-ins take those names, so that open_clip's model code itself is what radford is compared
    with."""
    if importlib.util.find_spec("open_clip") is None:
        pytest.skip("open_clip_torch is not installed (pip install open_clip_torch)")
    with pytest.MonkeyPatch.context() as patch:
        try:
            import torchvision  # noqa: F401
        except Exception:  # ImportError, or torchvision's RuntimeError when its compiled ops do not load
            for name in (
                "torchvision",
                "torchvision.transforms",
                "torchvision.transforms.functional",
                "torchvision.ops",
                "torchvision.ops.misc",
            ):
                stand_in = mock.MagicMock(name=name)
                stand_in.__spec__ = importlib.machinery.ModuleSpec(name, None)
                patch.setitem(sys.modules, name, stand_in)
        import open_clip

        yield open_clip
    for name in [name for name in sys.modules if name.split(".")[0] == "open_clip"]:
        del sys.modules[name]  # imported against the stand-ins


def open_clip_folder(open_clip, name: str, folder: Path, weights: str = "open_clip_model.safetensors"):
    """A random open_clip model written as open_clip's save_for_hf writes it, and that model read back by open_clip
    from the folder (``local-dir:``), which proves the folder is open_clip's layout."""
    from open_clip.push_to_hf_hub import save_config_for_hf

    config_file = folder.parent / f"{name}.json"
    config_file.write_text(json.dumps(CONFIGS[name]))
    open_clip.add_model_config(config_file)
    torch.manual_seed(0)
    model = open_clip.create_model(name)
    with torch.no_grad():  # random norms and batch statistics, so that a swapped or ignored one would show
        for module in model.modules():
            if isinstance(module, (torch.nn.LayerNorm, torch.nn.BatchNorm2d)):
                module.weight.normal_(1.0, 0.5)
                module.bias.normal_(0.0, 0.5)
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.5)
                module.running_var.uniform_(0.5, 1.5)
    folder.mkdir()
    tensors = model.state_dict()
    if weights.endswith(".safetensors"):
        save_file(tensors, folder / weights)
    else:
        torch.save(tensors, folder / weights)
    save_config_for_hf(model, folder / OPEN_CLIP_CONFIG, model_config=CONFIGS[name])
    return open_clip.create_model(f"local-dir:{folder}").eval()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_embeddings_equal_open_clip(open_clip, tmp_path, name):
    weights = "open_clip_pytorch_model.bin" if name == "resnet" else "open_clip_model.safetensors"
    reference = open_clip_folder(open_clip, name, tmp_path / name, weights)
    model = radford.load(tmp_path / name)
    assert isinstance(model, CLIP) and not model.training
    # The same names and shapes (the CustomTextCLIP's text tower is under text.).
    ours = model.state_dict()
    theirs = {key.removeprefix("text."): value for key, value in reference.state_dict().items()}
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    pixels, ids = batch(model, 3, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(pixels), reference.encode_image(pixels), atol=1e-4, rtol=0)
        torch.testing.assert_close(model.encode_text(ids), reference.encode_text(ids), atol=1e-4, rtol=0)
        torch.testing.assert_close(model(pixels, ids)[0], reference.get_logits(pixels, ids)[0], atol=1e-4, rtol=0)


def test_vocabulary_file_in_the_folder_is_the_tokenizer(open_clip, tmp_path):
    open_clip_folder(open_clip, "vit_gelu", tmp_path / "vit")
    merges = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    (tmp_path / "vit" / merges.name).write_bytes(merges.read_bytes())
    model = radford.load(tmp_path / "vit")
    texts = ["a photo of a cat.", "Two dogs playing in the snow"]
    assert model.tokenizer.tokenize(texts, 77).tolist() == open_clip.tokenize(texts).tolist()


# -- without open_clip: folders written from radford's own weights ------------------------------------------------


def radford_folder(folder: Path, config: dict, custom_text: bool = False) -> Path:
    """An open_clip-layout folder holding a random radford CLIP's weights (also saved as expected.pt): open_clip's
    names are OpenAI's, which radford keeps, except that open_clip's CustomTextCLIP has its text tower under
    ``text.``."""
    torch.manual_seed(0)
    arch = architecture_from_open_clip({"model_cfg": config})
    model = CLIP("RN50" if isinstance(arch["vision_layers"], tuple) else "ViT-B/32", **arch)
    visual = ("visual.", "logit_scale")
    tensors = {
        (key if not custom_text or key.startswith(visual) else f"text.{key}"): value.contiguous()
        for key, value in model.state_dict().items()
    }
    folder.mkdir(parents=True)
    save_file(tensors, folder / "open_clip_model.safetensors")
    (folder / OPEN_CLIP_CONFIG).write_text(
        json.dumps(
            {
                "model_cfg": dict(config, custom_text=custom_text),
                "preprocess_cfg": {"mean": [0.5] * 3, "std": [0.5] * 3},
            }
        )
    )
    torch.save(model.state_dict(), folder / "expected.pt")
    return folder


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("custom_text", [False, True])
def test_reads_open_clip_configs(tmp_path, name, custom_text):
    config = {k: v for k, v in CONFIGS[name].items() if k != "custom_text"}
    model = radford.load(radford_folder(tmp_path / "m", config, custom_text))
    expected = torch.load(tmp_path / "m" / "expected.pt", weights_only=True)
    assert all(torch.equal(model.state_dict()[key], value) for key, value in expected.items())
    hp, vision, text = model.hparams, config["vision_cfg"], config["text_cfg"]
    assert hp.quick_gelu == config.get("quick_gelu", False)
    assert hp.layer_norm_eps == vision.get("norm_kwargs", {}).get("eps", 1e-5)
    assert hp.text_mlp_width == int(text["width"] * text.get("mlp_ratio", 4.0))
    if name == "vit_wide_mlp_eps":
        assert (hp.vision_mlp_width, hp.vision_heads) == (256, 4)  # int(52 x 4.9231), 52 / 13
    if name == "resnet":
        assert hp.vision_layers == (1, 2, 1, 1) and hp.vision_heads == 16 * 32 // 64


def test_both_layouts_in_one_folder(tmp_path):
    """LAION's repositories hold config.json and open_clip_config.json: the weights present decide the reader."""
    folder = radford_folder(tmp_path / "m", CONFIGS["vit_gelu"])
    (folder / "config.json").write_text(json.dumps({"model_type": "clip"}))
    assert OPEN_CLIP.detect(folder) and not HF_CLIP.detect(folder)
    (folder / "model.safetensors").write_bytes(b"")
    assert HF_CLIP.detect(folder) and not OPEN_CLIP.detect(folder)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (dict(init_logit_bias=-10.0), "model_cfg sets init_logit_bias -10.0, which radford's CLIP does not compute"),
        (dict(vision_cfg=dict(timm_model_name="vit_base_patch16_siglip_224")), "vision_cfg sets timm_model_name"),
        (dict(text_cfg=dict(hf_model_name="xlm-roberta-base")), "text_cfg sets hf_model_name 'xlm-roberta-base'"),
        (
            dict(text_cfg=dict(pool_type="last")),
            "text_cfg sets pool_type 'last'.*OpenAI's architecture: pool_type 'argmax'",
        ),
        (dict(vision_cfg=dict(ls_init_value=1e-5)), "vision_cfg sets ls_init_value 1e-05"),
        (
            dict(vision_cfg=dict(rope=True)),
            "vision_cfg has the setting 'rope', which radford does not know; it reads: ",
        ),
        (dict(vision_cfg=dict(image_size=[32, 24])), r"vision_cfg has image_size \[32, 24\]; radford's CLIP is square"),
        (dict(text_cfg=dict(norm_kwargs=dict(eps=1e-6))), "vision tower layer norm eps 1e-05 and the text tower 1e-06"),
    ],
)
def test_configs_radford_cannot_compute_are_one_line(tmp_path, change, expected):
    folder = radford_folder(tmp_path / "m", CONFIGS["vit_gelu"])
    config = json.loads((folder / OPEN_CLIP_CONFIG).read_text())
    for key, value in change.items():
        if isinstance(value, dict):
            config["model_cfg"][key].update(value)
        else:
            config["model_cfg"][key] = value
    (folder / OPEN_CLIP_CONFIG).write_text(json.dumps(config))
    with pytest.raises(RadfordError, match=expected):
        radford.load(folder)


def test_missing_weights_and_bad_config_are_one_line(tmp_path):
    folder = radford_folder(tmp_path / "m", CONFIGS["vit_gelu"])
    (folder / "open_clip_model.safetensors").unlink()
    with pytest.raises(RadfordError, match="no weights in .*: looked for open_clip_model.safetensors or "):
        radford.load(folder)
    (folder / "open_clip_pytorch_model.bin").write_bytes(b"not torch")
    with pytest.raises(RadfordError, match="cannot read checkpoint .*open_clip_pytorch_model.bin"):
        radford.load(folder)
    (folder / OPEN_CLIP_CONFIG).write_text(json.dumps({"preprocess_cfg": {}}))
    with pytest.raises(RadfordError, match="open_clip_config.json has no model_cfg"):
        radford.load(folder)
