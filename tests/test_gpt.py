import inspect
import math
import random

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from transformers import GPT2Config, GPT2LMHeadModel, OpenAIGPTConfig, OpenAIGPTLMHeadModel

import radford.checkpoints
import radford.models.gpt
from radford.errors import RadfordError
from radford.models.common import sample
from radford.models.gpt import GPT, GPT1
from radford.models.gpt_adapter import BUFFERS, state_dict_from_hf, state_dict_to_hf

TINY = dict(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32)
FAMILIES = ("gpt2", "openai-gpt")
RADFORD_CLASS = {"gpt2": GPT, "openai-gpt": GPT1}


def random_config(seed: int) -> dict:
    rng = random.Random(seed)
    n_head = rng.randint(2, 4)
    return dict(
        vocab_size=rng.randint(50, 300),
        block_size=rng.randint(16, 64),
        n_layer=rng.randint(1, 3),
        n_head=n_head,
        n_embd=n_head * rng.choice([4, 8, 16]),
    )


def hf_model(config: dict, family: str = "gpt2") -> GPT2LMHeadModel | OpenAIGPTLMHeadModel:
    sizes = dict(
        vocab_size=config["vocab_size"],
        n_positions=config["block_size"],
        n_layer=config["n_layer"],
        n_head=config["n_head"],
        n_embd=config["n_embd"],
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
    )
    if family == "gpt2":
        hf = GPT2LMHeadModel(GPT2Config(**sizes, activation_function="gelu_new"))
    else:
        # OpenAIGPT's "gelu" is the tanh approximation (its table maps it to gelu_new and has no "gelu_new").
        hf = OpenAIGPTLMHeadModel(OpenAIGPTConfig(**sizes, afn="gelu"))
    # Far from the small init, so that LayerNorm gains and biases and GELU's curvature all show in the logits.
    with torch.no_grad():
        for param in hf.parameters():
            param.normal_(0.0, 0.5)
    return hf.eval()


def converted(hf: GPT2LMHeadModel | OpenAIGPTLMHeadModel, config: dict, family: str) -> GPT:
    model = RADFORD_CLASS[family](**config).eval()
    model.load_state_dict(state_dict_from_hf(hf.state_dict()), strict=True)
    return model


def assert_same_logits(model: GPT, hf: GPT2LMHeadModel | OpenAIGPTLMHeadModel, config: dict) -> None:
    ids = torch.randint(config["vocab_size"], (2, config["block_size"]))
    with torch.no_grad():
        diff = (model(ids) - hf(ids).logits).abs().max().item()
    assert diff < 1e-4, f"max |logits diff| {diff} for {config}"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loads_hf_weights(seed, family):
    torch.manual_seed(seed)
    config = random_config(seed)
    hf = hf_model(config, family)
    assert_same_logits(converted(hf, config, family), hf, config)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exports_hf_weights(seed, family):
    torch.manual_seed(seed)
    config = random_config(seed)
    model = RADFORD_CLASS[family](**config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.5)
    hf = hf_model(config, family)
    result = hf.load_state_dict(state_dict_to_hf(model.state_dict(), model_type=family), strict=False)
    assert not result.unexpected_keys
    assert all(key.endswith(BUFFERS) for key in result.missing_keys), result.missing_keys
    assert hf.lm_head.weight.data_ptr() == hf.transformer.get_input_embeddings().weight.data_ptr()
    assert_same_logits(model, hf, config)


def test_gpt2_model_class_is_post_norm_as_gpt1():
    # GPT(post_norm=True) and GPT1 are one model: the same weights give the same logits.
    torch.manual_seed(0)
    hf = hf_model(TINY, "openai-gpt")
    model = GPT(**TINY, post_norm=True).eval()
    model.load_state_dict(state_dict_from_hf(hf.state_dict()), strict=True)
    assert_same_logits(model, hf, TINY)


@pytest.mark.parametrize("family", FAMILIES)
def test_loads_checkpoint_saved_without_lm_head_with_buffers(family):
    # OpenAI's weights on the hub: saved from GPT2Model/OpenAIGPTModel, so no "transformer." prefix and no
    # lm_head, and, from older transformers, causal-mask and position buffers.
    hf = hf_model(TINY, family)
    sd = {key.removeprefix("transformer."): value for key, value in hf.state_dict().items() if key != "lm_head.weight"}
    sd["h.0.attn.bias"] = torch.ones(1, 1, 16, 16)
    sd["position_ids"] = torch.arange(16)
    model = RADFORD_CLASS[family](**TINY).eval()
    model.load_state_dict(state_dict_from_hf(sd), strict=True)
    assert_same_logits(model, hf, TINY)


@pytest.mark.parametrize(
    ("family", "model_type", "match"),
    [
        ("gpt2", "gpt-3", "unknown model_type 'gpt-3'; choose from: gpt2, openai-gpt"),
        ("gpt2", "openai-gpt", "model_type 'openai-gpt' does not fit these weights, which are 'gpt2'"),
        ("openai-gpt", "gpt2", "model_type 'gpt2' does not fit these weights, which are 'openai-gpt'"),
    ],
)
def test_export_rejects_wrong_model_type(family, model_type, match):
    with pytest.raises(RadfordError, match=match):
        state_dict_to_hf(RADFORD_CLASS[family](**TINY).state_dict(), model_type=model_type)


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
    model = GPT(**TINY, learning_rate=1e-3, min_learning_rate=1e-4, weight_decay=0.1, warmup_steps=10, decay_steps=110)
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
    assert lrs[0] == pytest.approx(1e-3 / 11)  # the first step trains, as nanoGPT's warmup
    assert lrs[5] == pytest.approx(6e-3 / 11)
    assert lrs[10] == pytest.approx(1e-3)
    assert lrs[60] == pytest.approx(5.5e-4)  # halfway down the cosine
    assert lrs[110] == pytest.approx(1e-4)
    assert lrs[120] == pytest.approx(1e-4)


def test_overfits_a_fixed_batch():
    torch.manual_seed(0)
    model = GPT(**TINY, learning_rate=3e-3, min_learning_rate=3e-3, weight_decay=0.0, warmup_steps=5, decay_steps=100)
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


@pytest.mark.parametrize(
    ("override", "match"),
    [
        (dict(n_embd=30, n_head=4), "n_embd \\(30\\).*n_head \\(4\\)"),
        (dict(n_layer=0), "n_layer must be positive, got 0"),
    ],
)
def test_rejects_bad_config(override, match):
    with pytest.raises(RadfordError, match=match):
        GPT(**{**TINY, **override})


def test_trainer_fits_and_reports_token_weighted_validation(quiet_trainer):
    torch.manual_seed(0)
    data = torch.randint(TINY["vocab_size"], (10, TINY["block_size"] + 1))
    train = DataLoader(TensorDataset(data[:, :-1], data[:, 1:]), batch_size=2)
    model = GPT(**TINY)
    trainer = quiet_trainer(max_steps=5)
    trainer.fit(model, train)
    assert torch.isfinite(trainer.callback_metrics["train_loss"])

    # Batches of 2, 2 and 1 sequences: a mean over batches would weigh the last one's tokens double.
    val = DataLoader(TensorDataset(data[:5, :-1], data[:5, 1:]), batch_size=2)
    (metrics,) = trainer.validate(model, val, verbose=False)
    model.eval()
    with torch.no_grad():
        expected = model.loss((data[:5, :-1], data[:5, 1:])).item()
    assert metrics["val_loss"] == pytest.approx(expected, rel=1e-5)
    assert metrics["val_ppl"] == pytest.approx(math.exp(expected), rel=1e-5)


# -- GPT-1 ----------------------------------------------------------------------------------------------------


def test_gpt1_is_gpt_with_the_papers_defaults():
    gpt, gpt1 = inspect.signature(GPT).parameters, inspect.signature(GPT1).parameters
    assert list(gpt1) == list(gpt)  # every argument, so GPT1 differs in defaults only
    assert {
        name: gpt1[name].default
        for name in (
            "vocab_size",
            "block_size",
            "n_layer",
            "n_head",
            "n_embd",
            "dropout",
            "post_norm",
            "learning_rate",
            "min_learning_rate",
            "weight_decay",
            "betas",
            "warmup_steps",
        )
    } == dict(
        vocab_size=40478,
        block_size=512,
        n_layer=12,
        n_head=12,
        n_embd=768,
        dropout=0.1,
        post_norm=True,
        learning_rate=2.5e-4,
        min_learning_rate=0.0,
        weight_decay=0.01,
        betas=(0.9, 0.999),
        warmup_steps=2000,
    )
    with torch.device("meta"):  # shapes only: no memory, no init time
        model = GPT1()
    assert model.hparams.post_norm and model.hparams.vocab_size == 40478
    # GPT-1 paper section 4.1: 117M parameters (the count includes the 512 positions).
    assert model.num_parameters(non_embedding=False) == pytest.approx(116.5e6, rel=0.01)


def test_gpt1_has_no_final_layernorm_nor_residual_init_scaling():
    torch.manual_seed(0)
    model = GPT1(vocab_size=100, block_size=32, n_layer=4, n_head=4, n_embd=256)
    assert "ln_f" not in model.transformer
    assert not any(".ln_f." in key for key in model.state_dict())
    for block in model.transformer.h:
        for proj in (block.attn.c_proj, block.mlp.c_proj):
            assert proj.weight.std().item() == pytest.approx(0.02, rel=0.1)


# -- hidden states ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_hidden_states_are_what_the_lm_head_reads(family):
    torch.manual_seed(0)
    model = converted(hf_model(TINY, family), TINY, family)
    # GPT-2's last module before the head is ln_f; GPT-1's the last block.
    last = model.transformer.ln_f if family == "gpt2" else model.transformer.h[-1]
    seen = []
    last.register_forward_hook(lambda module, args, output: seen.append(output))
    ids = torch.randint(TINY["vocab_size"], (3, 10))
    with torch.no_grad():
        hidden = model.hidden_states(ids)
        assert hidden.shape == (3, 10, TINY["n_embd"])
        assert torch.equal(hidden, seen[0])
        assert torch.equal(model.lm_head(hidden), model(ids))


@pytest.mark.parametrize("family", FAMILIES)
def test_hidden_states_with_a_cache_continue_the_sequence(family):
    # Chunks of 3, 1 and 5 tokens: the last needs its queries offset past the cached keys.
    torch.manual_seed(0)
    model = converted(hf_model(TINY, family), TINY, family)
    ids = torch.randint(TINY["vocab_size"], (2, 9))
    cache = model.kv_cache(2)
    with torch.no_grad():
        chunks = [model.hidden_states(ids[:, a:b], cache) for a, b in ((0, 3), (3, 4), (4, 9))]
        whole = model.hidden_states(ids)
    assert cache[0].length == 9
    assert (torch.cat(chunks, dim=1) - whole).abs().max().item() < 1e-4
    with pytest.raises(RadfordError, match="input length 17 exceeds block_size 16"):
        model.hidden_states(ids[:, :8], cache)


# -- generation ------------------------------------------------------------------------------------------------


def tokens(steps) -> torch.Tensor:
    """The generated ids (batch, steps) from generate's iterator."""
    return torch.stack(list(steps), dim=1)


def greedy_reference(model: GPT, ids: torch.Tensor, n: int) -> torch.Tensor:
    """The definition of greedy decoding with a sliding window, with nothing cached."""
    start = ids.shape[1]
    with torch.no_grad():
        for _ in range(n):
            next_ids = model(ids[:, -model.hparams.block_size :])[:, -1].argmax(-1)
            ids = torch.cat([ids, next_ids[:, None]], dim=1)
    return ids[:, start:]


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_generation_matches_transformers(family, use_cache):
    torch.manual_seed(0)
    config = {**TINY, "block_size": 32}
    hf = hf_model(config, family)
    model = converted(hf, config, family)
    prompt = torch.randint(config["vocab_size"], (2, 7))
    expected = hf.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        do_sample=False,
        max_new_tokens=25,
        pad_token_id=0,
        eos_token_id=None,
    )[:, 7:]
    assert expected.shape == (2, 25)
    got = tokens(model.generate(prompt, 25, temperature=0, use_cache=use_cache))
    assert torch.equal(got, expected)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("prompt_length", [5, 20])
def test_generation_past_block_size_slides_the_window(family, prompt_length):
    # block_size 16: 5 + 30 tokens go 19 past it; a 20-token prompt starts past it.
    torch.manual_seed(0)
    model = converted(hf_model(TINY, family), TINY, family)
    prompt = torch.randint(TINY["vocab_size"], (2, prompt_length))
    expected = greedy_reference(model, prompt, 30)
    for use_cache in (True, False):
        assert torch.equal(tokens(model.generate(prompt, 30, temperature=0, use_cache=use_cache)), expected)


def test_sampling_is_seeded_and_the_same_with_and_without_cache():
    torch.manual_seed(0)
    model = GPT(**TINY)  # the small init: near-uniform next-token distributions, so samples vary
    prompt = torch.randint(TINY["vocab_size"], (2, 4))

    def sampled(seed: int, use_cache: bool) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return tokens(model.generate(prompt, 24, temperature=1.5, generator=generator, use_cache=use_cache))

    first = sampled(1, use_cache=True)  # 24 tokens: across block_size 16, where the cache is rebuilt
    assert torch.equal(first, sampled(1, use_cache=False))
    assert torch.equal(first, sampled(1, use_cache=True))
    assert not torch.equal(first, sampled(2, use_cache=True))
    assert not torch.equal(first, tokens(model.generate(prompt, 24, temperature=0)))


def test_top_k_1_and_a_tiny_top_p_are_greedy():
    torch.manual_seed(0)
    model = converted(hf_model(TINY, "gpt2"), TINY, "gpt2")
    prompt = torch.randint(TINY["vocab_size"], (2, 4))
    greedy = tokens(model.generate(prompt, 10, temperature=0))
    assert torch.equal(tokens(model.generate(prompt, 10, top_k=1, temperature=5.0)), greedy)
    assert torch.equal(tokens(model.generate(prompt, 10, top_p=1e-6, temperature=5.0)), greedy)


def test_sample_keeps_the_top_k_and_the_smallest_set_reaching_top_p():
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log().expand(2000, 4)
    generator = torch.Generator().manual_seed(0)

    def drawn(**filters) -> set[int]:
        return set(sample(logits, generator=generator, **filters).tolist())

    assert drawn() == {0, 1, 2, 3}
    assert drawn(top_k=2) == {0, 1}
    assert drawn(top_p=0.5) == {0}  # 0.5 already reaches 0.5
    assert drawn(top_p=0.51) == {0, 1}
    assert drawn(top_p=0.9) == {0, 1, 2}
    assert drawn(top_k=2, top_p=0.9) == {0, 1}
    assert drawn(temperature=0) == {0}


def test_generation_runs_in_eval_mode_and_restores_training_mode():
    torch.manual_seed(0)
    model = GPT(**{**TINY, "dropout": 0.5})
    prompt = torch.randint(TINY["vocab_size"], (2, 4))
    model.eval()
    expected = greedy_reference(model, prompt, 8)
    model.train()
    steps = model.generate(prompt, 8, temperature=0)
    first = next(steps)
    assert model.training  # between steps, the caller's mode
    got = torch.cat([first[:, None], tokens(steps)], dim=1)
    assert torch.equal(got, expected)  # dropout was off while generating
    assert model.training
    assert not got.is_inference() and not first.is_inference()  # ordinary tensors a caller may train on


@pytest.mark.parametrize(
    ("prompt", "kwargs", "match"),
    [
        (torch.zeros(1, 0, dtype=torch.long), {}, "at least one token, got shape \\(1, 0\\)"),
        (torch.zeros(3, dtype=torch.long), {}, "input_ids must be \\(batch, time\\).*got shape \\(3,\\)"),
        (None, dict(max_new_tokens=-1), "max_new_tokens must be >= 0, got -1"),
        (None, dict(temperature=-0.5), "temperature must be >= 0 \\(0 is greedy\\), got -0.5"),
        (None, dict(top_k=0), "top_k must be >= 1 or None, got 0"),
        (None, dict(top_p=0.0), "top_p must be in \\(0, 1\\] or None, got 0.0"),
        (None, dict(top_p=1.5), "top_p must be in \\(0, 1\\] or None, got 1.5"),
    ],
)
def test_generate_rejects_bad_arguments_when_called(prompt, kwargs, match):
    prompt = torch.zeros(1, 3, dtype=torch.long) if prompt is None else prompt
    with pytest.raises(RadfordError, match=match):
        GPT(**TINY).generate(prompt, **{"max_new_tokens": 5, **kwargs})  # no step taken: raised at the call


# -- pretrained ------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_checkpoint(monkeypatch) -> GPT:
    """A GPT-1-shaped model that ``radford.checkpoints.read_weights`` returns for any path."""
    torch.manual_seed(0)
    source = GPT1(vocab_size=80, block_size=24, n_layer=3, n_head=2, n_embd=16).eval()

    def read_weights(path):
        assert path == "run.ckpt"
        return radford.checkpoints.Weights(GPT1, dict(source.hparams), source.state_dict(), None)

    monkeypatch.setattr(radford.models.gpt, "read_weights", read_weights)
    return source


def test_pretrained_takes_architecture_and_weights_from_the_checkpoint(fake_checkpoint):
    model = GPT(vocab_size=80, n_layer=1, n_embd=64, learning_rate=1e-3, pretrained="run.ckpt").eval()
    arch = dict(vocab_size=80, block_size=24, n_layer=3, n_head=2, n_embd=16, bias=True, post_norm=True)
    assert {name: model.hparams[name] for name in arch} == arch
    assert model.hparams.learning_rate == 1e-3  # optimisation arguments stay as given
    assert "pretrained" not in model.hparams  # a checkpoint of this run reloads without the original file
    assert "ln_f" not in model.transformer
    ids = torch.randint(80, (2, 24))
    with torch.no_grad():
        assert torch.equal(model(ids), fake_checkpoint(ids))
    # What a Lightning checkpoint of this run records rebuilds the same shapes.
    GPT(**model.hparams).load_state_dict(model.state_dict(), strict=True)


def test_pretrained_rejects_a_tokenizer_of_another_size(fake_checkpoint):
    with pytest.raises(RadfordError, match="vocab_size 50257 .* does not match the 80 tokens of run.ckpt"):
        GPT(pretrained="run.ckpt")
