"""``radford generate``: greedy text equals transformers' on GPT-2's real tokenizer, seeded sampling repeats,
characters split across tokens stream whole, the compiled decode step gives the same tokens, and mistakes are one
line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from radford.cli import main
from radford.commands.generate import REPLACEMENT_CHARACTER, decode_stream
from radford.models.gpt import GPT
from radford.tokenizers import GPT2BPE, from_files
from tests.helpers import error_line, radford_cli

PROMPT = "The café said: naïve"


@pytest.fixture(scope="module")
def gpt2_files(shared_data: Path) -> Path:
    return shared_data / "assets" / "gpt2"


@pytest.fixture(scope="module")
def hf(tmp_path_factory, gpt2_files) -> tuple[GPT2LMHeadModel, Path]:
    """A small random GPT-2 on GPT-2's real vocabulary, saved as a Hugging Face folder with its tokenizer files."""
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=50257,
        n_positions=64,
        n_layer=2,
        n_head=2,
        n_embd=32,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    model = GPT2LMHeadModel(config).eval()
    folder = tmp_path_factory.mktemp("hf-gpt2")
    model.save_pretrained(folder)
    # GPT-2's release names the files encoder.json and vocab.bpe; Hugging Face's folders vocab.json and merges.txt.
    shutil.copy(gpt2_files / "encoder.json", folder / "vocab.json")
    shutil.copy(gpt2_files / "vocab.bpe", folder / "merges.txt")
    return model, folder


def test_greedy_text_is_transformers_greedy(hf):
    model, folder = hf
    tokenizer = from_files(folder)
    prompt_ids = torch.tensor([tokenizer.encode(PROMPT)])
    # No end-of-text stop, as radford generate, which writes every token asked for.
    expected = model.generate(prompt_ids, max_new_tokens=24, do_sample=False, eos_token_id=None, pad_token_id=0)
    result = radford_cli(
        "generate", "--checkpoint", str(folder), "--prompt", PROMPT, "--temperature", "0", "--max_new_tokens", "24"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == PROMPT + tokenizer.decode(expected[0, prompt_ids.shape[1] :].tolist()) + "\n"
    assert "24 tokens in" in result.stderr and "tokens/s" in result.stderr


def generate(capsys, *args: str) -> str:
    main(["generate", *args])
    return capsys.readouterr().out


def test_seeded_samples_repeat(hf, capsys):
    _, folder = hf
    args = ("--checkpoint", str(folder), "--prompt", PROMPT, "--max_new_tokens", "12", "--num_samples", "2")
    first = generate(capsys, *args, "--seed", "1")
    samples = first.split("\n---\n")
    assert len(samples) == 2 and all(sample.startswith(PROMPT) for sample in samples)
    assert samples[0] != samples[1]
    assert generate(capsys, *args, "--seed", "1") == first
    assert generate(capsys, *args, "--seed", "1", "--no_cache") == first  # the cache changes no token
    assert generate(capsys, *args, "--seed", "2") != first


@pytest.mark.slow  # compiling the decode step (inductor, C++) takes tens of seconds on a CPU
def test_compiled_decoding_gives_the_same_tokens(hf, capsys, monkeypatch):
    _, folder = hf
    made = []  # the compiled steps --compile asked the model for
    original = GPT.compiled_decode_step
    monkeypatch.setattr(GPT, "compiled_decode_step", lambda self: made.append(self) or original(self))
    # Past the 64 positions of the model: the window slides, where the compiled step hands over to the full forward.
    args = ("--checkpoint", str(folder), "--prompt", PROMPT, "--max_new_tokens", "70", "--temperature", "0")
    eager = generate(capsys, *args)
    main(["generate", *args, "--compile"])
    compiled, said = capsys.readouterr()
    assert compiled == eager and len(eager) > len(PROMPT)
    assert len(made) == 1  # once, for the sample; without --compile, never
    assert "70 tokens in" in said and "(compiling included)" in said


def test_stream_holds_characters_split_across_tokens(gpt2_files):
    tokenizer = GPT2BPE(str(gpt2_files))
    prompt_ids = tokenizer.encode("Say:")
    text = " 日本語のテキスト 😀🎉 done"
    ids = tokenizer.encode(text)
    assert any(REPLACEMENT_CHARACTER in tokenizer.decode([i]) for i in ids)  # some tokens are partial characters
    pieces = list(decode_stream(tokenizer, prompt_ids, iter(ids)))
    assert "".join(pieces) == text
    assert len(pieces) > 5 and not any(REPLACEMENT_CHARACTER in piece for piece in pieces)


def test_stream_releases_an_unfinished_character_at_the_end(gpt2_files):
    tokenizer = GPT2BPE(str(gpt2_files))
    partial = next(i for i in tokenizer.encode("日本語") if tokenizer.decode([i]) == REPLACEMENT_CHARACTER)
    assert list(decode_stream(tokenizer, tokenizer.encode("x"), [partial])) == [REPLACEMENT_CHARACTER]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--checkpoint", "/no/such/model", "--prompt", "x"], ["/no/such/model not found", ".ckpt"]),
        (["--prompt", "x"], ["radford generate", "--checkpoint"]),
        (["--checkpoint", "{folder}", "--prompt", "x", "--top_p", "2"], ["top_p", "(0, 1]", "2.0"]),
        (["--checkpoint", "{folder}", "--prompt", "x", "--temperature", "hot"], ["--temperature", "'hot'"]),
        (["--checkpoint", "{folder}", "--prompt", "x", "--num_samples", "0"], ["--num_samples", "0"]),
        (["--checkpoint", "{bare}", "--prompt", "x"], ["{bare}", "no tokenizer"]),
        (["--checkpoint", "{folder}", "--prompt", "x", "--compile", "--no_cache"], ["--compile", "--no_cache"]),
    ],
    ids=[
        "missing-checkpoint",
        "no-checkpoint",
        "top-p",
        "temperature",
        "num-samples",
        "no-tokenizer",
        "compile-no-cache",
    ],
)
def test_mistakes_are_one_line(hf, tmp_path, capsys, args, expected):
    _, folder = hf
    bare = tmp_path / "bare"  # weights and config, no tokenizer files
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(folder / name, bare / name)
    line = error_line(capsys, "generate", *(arg.format(folder=folder, bare=bare) for arg in args))
    for fragment in expected:
        assert fragment.format(bare=bare) in line, line
    assert not capsys.readouterr().out  # nothing printed before the error
