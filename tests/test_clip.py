"""CLIP: the named sizes against OpenAI's parameter counts, exact parity with transformers' CLIPModel on random small
ViT configs, the loss, the temperature, and mistakes a user can make."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import radford
from radford.errors import RadfordError
from radford.models.clip import CLIP, SIZES, contrastive_loss
from radford.models.gpt import pretrained_gpt

TINY = dict(size="ViT-tiny", vocab_size=100)


def batch(model: CLIP, n: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random pixels and token ids whose <|endoftext|> (the largest id) sits at varied positions."""
    generator = torch.Generator().manual_seed(seed)
    side, length, vocab = model.hparams.image_size, model.hparams.context_length, model.hparams.vocab_size
    pixels = torch.randn(n, 3, side, side, generator=generator)
    ids = torch.randint(1, vocab - 2, (n, length), generator=generator)
    ids[torch.arange(n), torch.randint(1, length, (n,), generator=generator)] = vocab - 1
    return pixels, ids


# OpenAI's released models, and LAION's largest (as open_clip 3.3.0 builds ViT-H-14, ViT-g-14 and ViT-bigG-14).
@pytest.mark.parametrize(
    ("size", "count"),
    [
        ("RN50", 102_007_137),
        ("RN101", 119_688_033),
        ("ViT-B/32", 151_277_313),
        ("ViT-B/16", 149_620_737),
        ("ViT-L/14", 427_616_513),
        ("ViT-H/14", 986_109_441),
        ("ViT-g/14", 1_366_678_273),
        ("ViT-bigG/14", 2_539_567_105),
    ],
)
def test_named_sizes_have_the_released_parameter_counts(size, count):
    with torch.device("meta"):  # shapes only
        model = CLIP(size)
    assert sum(p.numel() for p in model.parameters()) == count


@pytest.mark.parametrize("size", ["ViT-tiny", "RN-tiny"])
def test_encoders_and_logits(size):
    torch.manual_seed(0)
    model = CLIP(size, vocab_size=100).eval()
    pixels, ids = batch(model)
    image, text = model.encode_image(pixels), model.encode_text(ids)
    assert image.shape == text.shape == (4, model.hparams.embed_dim)
    per_image, per_text = model(pixels, ids)
    expected = math.exp(math.log(1 / 0.07)) * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T
    torch.testing.assert_close(per_image, expected)
    torch.testing.assert_close(per_text, expected.T)
    # The text's features are read at <|endoftext|>: what follows it (padding) changes nothing.
    padded = ids.clone()
    for row in range(len(ids)):
        padded[row, ids[row].argmax() + 1 :] = 0
    torch.testing.assert_close(model.encode_text(padded), text)


def test_contrastive_loss_is_symmetric_cross_entropy():
    torch.manual_seed(0)
    image, text = F.normalize(torch.randn(5, 8), dim=-1), F.normalize(torch.randn(5, 8), dim=-1)
    logits = 10.0 * image @ text.T
    expected = (F.cross_entropy(logits, torch.arange(5)) + F.cross_entropy(logits.T, torch.arange(5))) / 2
    torch.testing.assert_close(contrastive_loss(image, text, torch.tensor(10.0)), expected)
    # Matching pairs far more similar than the rest: the loss goes to zero.
    assert contrastive_loss(image, image, torch.tensor(100.0)) < contrastive_loss(image, text, torch.tensor(100.0))


def test_temperature_starts_at_007_and_is_clamped_at_100():
    model = CLIP(**TINY)
    assert model.logit_scale.exp().item() == pytest.approx(1 / 0.07)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    model.on_train_batch_end(None, None, 0)
    assert model.logit_scale.exp().item() == pytest.approx(100.0)


def test_learns_to_match_pairs():
    """A learning check: on a fixed batch of 16 random pairs the loss falls from ln 16 to near zero."""
    torch.manual_seed(0)
    model = CLIP(**TINY, vision_layers=1, text_layers=1)
    data = batch(model, 16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    first = model.loss(data)[0].item()
    for _ in range(40):
        loss = model.loss(data)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert first == pytest.approx(math.log(16), abs=0.5)
    assert loss.item() < 0.1


def test_sizes_and_overrides():
    assert {"RN50", "ViT-B/32", "ViT-B/16", "ViT-L/14", "ViT-tiny", "RN-tiny"} <= set(SIZES)
    model = CLIP("ViT-tiny", vocab_size=100, embed_dim=32, text_layers=1)
    assert (model.hparams.embed_dim, model.hparams.text_layers, model.hparams.vision_layers) == (32, 1, 3)
    assert model.text_projection.shape == (64, 32)
    with pytest.raises(RadfordError, match="unknown CLIP size 'ViT-H'; choose from: RN50"):
        CLIP("ViT-H")
    with pytest.raises(RadfordError, match="multiple of patch_size"):
        CLIP(**TINY, patch_size=7)
    model = CLIP(**TINY)
    with pytest.raises(RadfordError, match=r"pixels must be \(batch, 3, 48, 48\)"):
        model.encode_image(torch.zeros(1, 3, 32, 32))
    with pytest.raises(RadfordError, match="token ids must be"):
        model.encode_text(torch.zeros(1, 21, dtype=torch.long))


# -- transformers' CLIPModel -------------------------------------------------------------------------------------

HF_CONFIGS = [
    # OpenAI's activation and transformers' old end-of-text convention (features at the largest id).
    dict(
        text=dict(
            vocab_size=99,
            hidden_size=32,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=16,
            eos_token_id=2,
        ),
        vision=dict(
            hidden_size=48,
            intermediate_size=192,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=24,
    ),
    # GELU, the end-of-text id last in the vocabulary (newer configs), other shapes.
    dict(
        text=dict(
            vocab_size=64,
            hidden_size=24,
            intermediate_size=96,
            num_hidden_layers=3,
            num_attention_heads=2,
            max_position_embeddings=12,
            eos_token_id=63,
            hidden_act="gelu",
        ),
        vision=dict(
            hidden_size=40,
            intermediate_size=160,
            num_hidden_layers=1,
            num_attention_heads=5,
            image_size=28,
            patch_size=7,
            hidden_act="gelu",
        ),
        projection_dim=16,
    ),
    # MLPs other than 4 x hidden (LAION's ViT-bigG/14: 8192 for 1664, 4.92 x) and another epsilon.
    dict(
        text=dict(
            vocab_size=80,
            hidden_size=32,
            intermediate_size=80,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=10,
            eos_token_id=79,
            hidden_act="gelu",
            layer_norm_eps=1e-6,
        ),
        vision=dict(
            hidden_size=52,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
            hidden_act="gelu",
            layer_norm_eps=1e-6,
        ),
        projection_dim=20,
    ),
]


@pytest.fixture(params=range(len(HF_CONFIGS)), ids=["quick_gelu", "gelu", "wide_mlp_eps"])
def hf_folder(request, tmp_path):
    transformers = pytest.importorskip("transformers")
    spec = HF_CONFIGS[request.param]
    config = transformers.CLIPConfig(
        text_config=spec["text"], vision_config=spec["vision"], projection_dim=spec["projection_dim"]
    )
    torch.manual_seed(request.param)
    hf = transformers.CLIPModel(config).eval()
    with torch.no_grad():  # random LayerNorm gains and biases, so that a swapped one would show
        for name, param in hf.named_parameters():
            if "norm" in name:
                param.normal_(std=0.5 if name.endswith("bias") else 1.0)
    hf.save_pretrained(tmp_path)
    return hf, tmp_path


def test_hf_parity(hf_folder):
    hf, folder = hf_folder
    model = radford.load(folder)
    assert isinstance(model, CLIP) and model.tokenizer is None
    pixels, ids = batch(model, 3, seed=1)
    with torch.no_grad():
        image = hf.get_image_features(pixel_values=pixels)
        text = hf.get_text_features(input_ids=ids)
        image, text = (getattr(t, "pooler_output", t) for t in (image, text))
        torch.testing.assert_close(model.encode_image(pixels), image, atol=1e-4, rtol=0)
        torch.testing.assert_close(model.encode_text(ids), text, atol=1e-4, rtol=0)
        torch.testing.assert_close(
            model(pixels, ids)[0], hf(input_ids=ids, pixel_values=pixels).logits_per_image, atol=1e-4, rtol=0
        )


def test_hf_folder_mistakes(hf_folder):
    import json

    _, folder = hf_folder
    config = json.loads((folder / "config.json").read_text())
    config["text_config"]["hidden_act"] = "relu"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(RadfordError, match="hidden_act 'relu'"):
        radford.load(folder)
    config["text_config"]["hidden_act"] = config["vision_config"].get("hidden_act", "quick_gelu")
    config["text_config"]["eos_token_id"] = 5
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(RadfordError, match="eos_token_id 5"):
        radford.load(folder)
    config["text_config"]["eos_token_id"] = 2
    config["vision_config"]["layer_norm_eps"] = 1e-3
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(RadfordError, match="vision_config sets layer_norm_eps 0.001, the text's"):
        radford.load(folder)
    config["vision_config"]["layer_norm_eps"] = config["text_config"].get("layer_norm_eps", 1e-5)
    config["projection_dim"] = 7
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(RadfordError, match="do not fit CLIP"):
        radford.load(folder)
    with pytest.raises(RadfordError, match="holds a CLIP, not a GPT's weights"):
        pretrained_gpt(folder)
