import math
import random

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from transformers import GPT2Config, GPT2LMHeadModel

from radford.errors import RadfordError
from radford.models.gpt import GPT, HF_BUFFERS, state_dict_from_hf, state_dict_to_hf

TINY = dict(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32)


def random_config(seed: int) -> dict:
    rng = random.Random(seed)
    n_head = rng.randint(2, 4)
    return dict(vocab_size=rng.randint(50, 300), block_size=rng.randint(16, 64), n_layer=rng.randint(1, 3),
                n_head=n_head, n_embd=n_head * rng.choice([4, 8, 16]))


def hf_gpt2(config: dict) -> GPT2LMHeadModel:
    hf_config = GPT2Config(
        vocab_size=config["vocab_size"], n_positions=config["block_size"], n_layer=config["n_layer"],
        n_head=config["n_head"], n_embd=config["n_embd"], activation_function="gelu_new", resid_pdrop=0.0,
        embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
        bos_token_id=config["vocab_size"] - 1, eos_token_id=config["vocab_size"] - 1,
    )
    hf = GPT2LMHeadModel(hf_config).eval()
    # Far from the small init, so that LayerNorm gains and biases and GELU's curvature all show in the logits.
    with torch.no_grad():
        for param in hf.parameters():
            param.normal_(0.0, 0.5)
    return hf


def assert_same_logits(model: GPT, hf: GPT2LMHeadModel, config: dict) -> None:
    ids = torch.randint(config["vocab_size"], (2, config["block_size"]))
    with torch.no_grad():
        diff = (model(ids) - hf(ids).logits).abs().max().item()
    assert diff < 1e-4, f"max |logits diff| {diff} for {config}"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loads_hf_gpt2_weights(seed):
    torch.manual_seed(seed)
    config = random_config(seed)
    hf = hf_gpt2(config)
    model = GPT(**config).eval()
    model.load_state_dict(state_dict_from_hf(hf.state_dict()), strict=True)
    assert_same_logits(model, hf, config)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exports_hf_gpt2_weights(seed):
    torch.manual_seed(seed)
    config = random_config(seed)
    model = GPT(**config).eval()
    hf = hf_gpt2(config)
    result = hf.load_state_dict(state_dict_to_hf(model.state_dict()), strict=False)
    assert not result.unexpected_keys
    assert all(key.endswith(HF_BUFFERS) for key in result.missing_keys), result.missing_keys
    assert_same_logits(model, hf, config)


def test_loads_checkpoint_saved_from_gpt2model_with_mask_buffers():
    # OpenAI's weights on the hub: no "transformer." prefix, no lm_head, causal-mask buffers.
    hf = hf_gpt2(TINY)
    sd = {key.removeprefix("transformer."): value for key, value in hf.state_dict().items()
          if key != "lm_head.weight"}
    sd["h.0.attn.bias"] = torch.ones(1, 1, 16, 16)
    GPT(**TINY).load_state_dict(state_dict_from_hf(sd), strict=True)


def test_init_scales_residual_projections_and_ties_embeddings():
    torch.manual_seed(0)
    model = GPT(vocab_size=100, block_size=32, n_layer=4, n_head=4, n_embd=256)
    residual_std = 0.02 / math.sqrt(2 * 4)
    for block in model.transformer.h:
        for proj in (block.attn.c_proj, block.mlp.c_proj):
            assert proj.weight.std().item() == pytest.approx(residual_std, rel=0.1)
            assert not proj.bias.any()
        assert block.mlp.c_fc.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert model.lm_head.weight is model.transformer.wte.weight
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()


def test_num_parameters_counts_tied_embedding_once():
    model = GPT(**TINY)
    total = sum(p.numel() for p in set(model.parameters()))
    assert model.num_parameters(non_embedding=False) == total
    assert model.num_parameters() == total - TINY["block_size"] * TINY["n_embd"]


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
def test_optimizer_decays_matrices_only_and_schedules_warmup_then_cosine():
    model = GPT(**TINY, learning_rate=1e-3, min_learning_rate=1e-4, weight_decay=0.1, warmup_steps=10,
                decay_steps=110)
    config = model.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "step"

    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0.1 for p in g["params"]}
    not_decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0.0 for p in g["params"]}
    assert decayed == {id(p) for p in model.parameters() if p.dim() >= 2}
    assert not_decayed == {id(p) for p in model.parameters() if p.dim() < 2}

    lrs = [scheduler.get_last_lr()[0]]
    for _ in range(120):
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    assert lrs[0] == 0.0
    assert lrs[5] == pytest.approx(5e-4)
    assert lrs[10] == pytest.approx(1e-3)
    assert lrs[60] == pytest.approx(5.5e-4)  # halfway down the cosine
    assert lrs[110] == pytest.approx(1e-4)
    assert lrs[120] == pytest.approx(1e-4)


def test_overfits_a_fixed_batch():
    torch.manual_seed(0)
    model = GPT(**TINY, learning_rate=3e-3, min_learning_rate=3e-3, weight_decay=0.0, warmup_steps=5,
                decay_steps=100)
    x = torch.randint(TINY["vocab_size"], (4, TINY["block_size"]))
    y = torch.randint(TINY["vocab_size"], (4, TINY["block_size"]))
    config = model.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    first = model.loss((x, y)).item()
    assert first == pytest.approx(math.log(TINY["vocab_size"]), abs=0.3)  # near-uniform at init
    for _ in range(80):
        loss = model.loss((x, y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    assert loss.item() < 0.5


def test_rejects_input_longer_than_block_size():
    with pytest.raises(RadfordError, match="17.*16"):
        GPT(**TINY)(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize(("override", "match"), [
    (dict(n_embd=30, n_head=4), "n_embd \\(30\\).*n_head \\(4\\)"),
    (dict(n_layer=0), "n_layer must be positive, got 0"),
])
def test_rejects_bad_config(override, match):
    with pytest.raises(RadfordError, match=match):
        GPT(**{**TINY, **override})


def test_trainer_fits_and_reports_token_weighted_validation():
    torch.manual_seed(0)
    data = torch.randint(TINY["vocab_size"], (10, TINY["block_size"] + 1))
    train = DataLoader(TensorDataset(data[:, :-1], data[:, 1:]), batch_size=2)
    model = GPT(**TINY)
    trainer = L.Trainer(max_steps=5, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, train)
    assert torch.isfinite(trainer.callback_metrics["train_loss"])
    assert trainer.callback_metrics["tokens_per_sec"] > 0

    # Batches of 2, 2 and 1 sequences: a mean over batches would weigh the last one's tokens double.
    val = DataLoader(TensorDataset(data[:5, :-1], data[:5, 1:]), batch_size=2)
    (metrics,) = trainer.validate(model, val, verbose=False)
    model.eval()
    with torch.no_grad():
        expected = model.loss((data[:5, :-1], data[:5, 1:])).item()
    assert metrics["val_loss"] == pytest.approx(expected, rel=1e-5)
    assert metrics["val_ppl"] == pytest.approx(math.exp(expected), rel=1e-5)
