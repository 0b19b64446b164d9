"""GPT-1's release format (``radford.models.gpt1_release``) against a numpy transcription of OpenAI's ``train.py``
(openai/finetune-transformer-lm): random weights written as its ``params_shapes.json`` + ten ``params_N.npy`` shards,
logits equal to its model's; the release's tokenizer attached; converted to a Hugging Face ``openai-gpt`` folder that
``transformers`` loads with the same logits."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import radford
from radford.checkpoints import convert
from radford.errors import RadfordError
from radford.models.gpt import GPT1
from radford.tokenizers import from_files
from radford.tokenizers.gpt1 import GPT1BPE

N_VOCAB, N_CTX, N_EMBD, N_LAYER = 300, 32, 128, 2  # 2 heads of 64


def shapes_of(n_vocab: int, n_ctx: int, n_embd: int, n_layer: int) -> list[list[int]]:
    """params_shapes.json as the release lays it out: positions, tokens, then twelve arrays per block."""
    n = n_embd
    block = [[1, n, 3 * n], [3 * n], [1, n, n], [n], [n], [n], [1, n, 4 * n], [4 * n], [1, 4 * n, n], [n], [n], [n]]
    return [[n_ctx, n], [n_vocab, n], *block * n_layer]


def write_release(
    folder: Path,
    n_vocab: int = N_VOCAB,
    n_ctx: int = N_CTX,
    n_embd: int = N_EMBD,
    n_layer: int = N_LAYER,
    seed: int = 0,
) -> None:
    """Random weights, large enough that every layer matters, flattened, concatenated and cut into ten shards."""
    rng = np.random.default_rng(seed)
    shapes = shapes_of(n_vocab, n_ctx, n_embd, n_layer)
    arrays = []
    for k, shape in enumerate(shapes):
        is_gain = k >= 2 and (k - 2) % 12 in (4, 10)  # ln_1.g, ln_2.g
        values = rng.uniform(0.5, 1.5, shape) if is_gain else rng.standard_normal(shape) * 0.2
        arrays.append(values.astype(np.float32).reshape(-1))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params_shapes.json").write_text(json.dumps(shapes))
    for i, shard in enumerate(np.array_split(np.concatenate(arrays), 10)):
        np.save(folder / f"params_{i}.npy", shard)


# -- train.py's model, transcribed to numpy (float64, inference: no dropout) ------------------------------------


def gelu(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * np.power(x, 3))))


def _norm(x, g, b, e=1e-5):
    u = np.mean(x, axis=-1, keepdims=True)
    s = np.mean(np.square(x - u), axis=-1, keepdims=True)
    return (x - u) / np.sqrt(s + e) * g + b


def conv1d(x, w, b):  # rf == 1: the "faster 1x1 conv", a matmul with the kernel's only row
    return x @ w.reshape(w.shape[1], w.shape[2]) + b


def split_heads(x, n, k=False):
    x = x.reshape(*x.shape[:-1], n, x.shape[-1] // n)
    return x.transpose(0, 2, 3, 1) if k else x.transpose(0, 2, 1, 3)


def merge_heads(x):
    x = x.transpose(0, 2, 1, 3)
    return x.reshape(*x.shape[:-2], -1)


def mask_attn_weights(w):
    n = w.shape[-1]
    b = np.tril(np.ones((n, n))).reshape(1, 1, n, n)
    return w * b + -1e9 * (1 - b)


def softmax(w):
    w = np.exp(w - w.max(-1, keepdims=True))
    return w / w.sum(-1, keepdims=True)


def _attn(q, k, v):
    w = q @ k
    w = w / np.sqrt(v.shape[-1])  # scale=True: rsqrt of the head's width
    return softmax(mask_attn_weights(w)) @ v


def block(x, p, n_head):
    c_attn_w, c_attn_b, c_proj_w, c_proj_b, ln_1_g, ln_1_b, c_fc_w, c_fc_b, mlp_proj_w, mlp_proj_b, ln_2_g, ln_2_b = p
    q, k, v = np.split(conv1d(x, c_attn_w, c_attn_b), 3, 2)
    a = conv1d(
        merge_heads(_attn(split_heads(q, n_head), split_heads(k, n_head, k=True), split_heads(v, n_head))),
        c_proj_w,
        c_proj_b,
    )
    n = _norm(x + a, ln_1_g, ln_1_b)
    m = conv1d(gelu(conv1d(n, c_fc_w, c_fc_b)), mlp_proj_w, mlp_proj_b)
    return _norm(n + m, ln_2_g, ln_2_b)


def train_py_logits(folder: Path, X: np.ndarray, n_head: int, n_special: int = 3) -> np.ndarray:
    """LM logits over the n_vocab tokens for ids X (batch, n_ctx), loading the release as train.py does."""
    shapes = json.loads((folder / "params_shapes.json").read_text())
    offsets = np.cumsum([np.prod(shape) for shape in shapes])
    init_params = [np.load(folder / f"params_{n}.npy") for n in range(10)]
    init_params = np.split(np.concatenate(init_params, 0), offsets)[:-1]
    init_params = [param.reshape(shape).astype(np.float64) for param, shape in zip(init_params, shapes, strict=True)]
    n_ctx = X.shape[1]
    n_vocab, n_embd = init_params[1].shape
    init_params[0] = init_params[0][:n_ctx]
    specials = np.random.default_rng(1).standard_normal((n_special, n_embd)) * 0.02
    init_params[0] = np.concatenate([init_params[1], specials, init_params[0]], 0)
    del init_params[1]
    we = init_params[0]
    X = np.stack([X, np.broadcast_to(np.arange(n_vocab + n_special, n_vocab + n_special + n_ctx), X.shape)], -1)
    h = we[X].sum(2)
    for layer in range((len(init_params) - 1) // 12):
        h = block(h, init_params[1 + 12 * layer : 13 + 12 * layer], n_head)
    return (h @ we.T)[..., :n_vocab]  # the specials' and positions' logits are never targets


# -- the tests ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gpt1") / "model"
    write_release(folder)
    return folder


@pytest.fixture(scope="module")
def ids() -> np.ndarray:
    return np.random.default_rng(2).integers(0, N_VOCAB, (2, N_CTX))


def test_loads_as_gpt1_sized_by_the_shapes(release):
    model = radford.load(release)
    assert type(model) is GPT1 and not model.training
    hp = model.hparams
    assert (hp.vocab_size, hp.block_size, hp.n_layer, hp.n_head, hp.n_embd) == (N_VOCAB, N_CTX, N_LAYER, 2, N_EMBD)
    assert hp.post_norm and "ln_f" not in model.transformer
    assert model.tokenizer is None  # no encoder_bpe_40000.json beside these weights


def test_logits_equal_train_py(release, ids):
    expected = train_py_logits(release, ids, n_head=2)
    with torch.no_grad():
        logits = radford.load(release)(torch.tensor(ids)).numpy()
    assert np.abs(expected).max() > 1  # far from a trivial model
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)


def test_converts_to_an_openai_gpt_folder_transformers_loads(release, ids, tmp_path):
    transformers = pytest.importorskip("transformers")
    # In one step (radford convert FOLDER hf/), and through a .ckpt.
    direct = convert(release, tmp_path / "hf")
    through = convert(convert(release, tmp_path / "gpt1.ckpt"), tmp_path / "hf-through")
    with torch.no_grad():
        ours = radford.load(release)(torch.tensor(ids))
        for hf in (direct, through):
            assert json.loads((hf / "config.json").read_text())["model_type"] == "openai-gpt"
            theirs = transformers.OpenAIGPTLMHeadModel.from_pretrained(hf).eval()
            np.testing.assert_allclose(theirs(torch.tensor(ids)).logits.numpy(), ours.numpy(), atol=1e-4, rtol=0)


def test_attaches_gpt1s_tokenizer(shared_data, tmp_path):
    """The release's own BPE files beside the weights: GPT-1's tokenizer, as from_files reads it, through convert."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path / "model"
    write_release(folder, n_vocab=40478, n_ctx=16, n_embd=64, n_layer=1)
    for name in ("encoder_bpe_40000.json", "vocab_40000.bpe"):
        shutil.copy(shared_data / "assets" / "gpt1" / name, folder / name)
    model = radford.load(folder)
    text = "Karen was assigned a roommate her first year of college."
    assert isinstance(model.tokenizer, GPT1BPE)
    assert model.tokenizer.encode(text) == from_files(shared_data / "assets" / "gpt1").encode(text)
    assert model.features([text, "A fine film."]).shape == (2, 64)
    hf = convert(convert(folder, tmp_path / "gpt1.ckpt"), tmp_path / "hf")
    assert transformers.OpenAIGPTTokenizerFast.from_pretrained(hf)(text)["input_ids"] == model.tokenizer.encode(text)


def test_a_tokenizer_of_another_size_is_refused(shared_data, tmp_path):
    write_release(tmp_path)  # 300 tokens
    for name in ("encoder_bpe_40000.json", "vocab_40000.bpe"):
        shutil.copy(shared_data / "assets" / "gpt1" / name, tmp_path / name)
    with pytest.raises(RadfordError, match="tokenizer .* has 40478 tokens, the weights 300"):
        radford.load(tmp_path)


def test_shards_that_do_not_match_the_shapes_are_one_line(release, tmp_path):
    shutil.copytree(release, tmp_path, dirs_exist_ok=True)
    np.save(tmp_path / "params_9.npy", np.load(release / "params_9.npy")[:-5])
    with pytest.raises(RadfordError, match=r"hold [\d,]+ float32 values; params_shapes\.json describes"):
        radford.load(tmp_path)


def test_shapes_not_in_gpt1s_layout_are_one_line(release, tmp_path):
    shutil.copytree(release, tmp_path, dirs_exist_ok=True)
    shapes = json.loads((release / "params_shapes.json").read_text())
    (tmp_path / "params_shapes.json").write_text(json.dumps(shapes[:-1]))
    with pytest.raises(RadfordError, match="does not describe GPT-1's layout"):
        radford.load(tmp_path)
