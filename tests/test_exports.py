"""``radford convert`` to a Hugging Face folder that the ecosystem's own loaders read back: for every tokenizer kind
(GPT-2's BPE, GPT-1's, ``char``, a trained ``bpe``), transformers' ``AutoTokenizer`` and ``pipeline`` give radford's
ids, text and greedy continuation; GPT-1's loads with ``OpenAIGPTTokenizer(Fast)`` from vocab.json + merges.txt alone.
Tiny random models; nothing is downloaded."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import radford
from radford.checkpoints import Weights, convert, write_checkpoint
from radford.models.gpt import GPT, GPT1
from radford.tokenizers import BPE, GPT1BPE, GPT2BPE, Char, Tokenizer

transformers = pytest.importorskip("transformers")

TEXTS = [
    "The quick brown fox jumps over the lazy dog. It's 3:45pm; they're late, aren't they?",
    "def f(x):\n    return x ** 2  # square\n\n\nprint(f(12))\n",
    "  leading and trailing spaces  ",
    "Spaces before punctuation , and . are kept : ( like this ) .",
    "",
]
# transformers' class for each kind, and the model radford exports it with (GPT-1's tokenizer with GPT-1).
KINDS = {
    "gpt2": ("GPT2Tokenizer", GPT),
    "gpt1": ("OpenAIGPTTokenizer", GPT1),
    "char": ("TokenizersBackend", GPT),
    "bpe": ("GPT2Tokenizer", GPT),
}


def stdlib_text() -> str:
    return (Path(os.__file__).parent / "textwrap.py").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def tokenizers(shared_data: Path) -> dict[str, Tokenizer]:
    char = Char()
    char.train([stdlib_text(), *TEXTS])
    bpe = BPE(vocab_size=400)
    bpe.train([stdlib_text()])
    assets = shared_data / "assets"
    return {"gpt2": GPT2BPE(str(assets / "gpt2")), "gpt1": GPT1BPE(str(assets / "gpt1")), "char": char, "bpe": bpe}


def export(kind: str, tokenizer: Tokenizer, folder: Path) -> Path:
    """``radford convert`` of a tiny random model of ``kind`` with ``tokenizer`` to ``folder``."""
    torch.manual_seed(0)
    model = KINDS[kind][1](vocab_size=tokenizer.vocab_size, block_size=64, n_layer=2, n_head=2, n_embd=32)
    write_checkpoint(Weights(type(model), dict(model.hparams), model.state_dict(), tokenizer), folder / "model.ckpt")
    return convert(folder / "model.ckpt", folder / "hf")


@pytest.fixture(scope="module", params=list(KINDS))
def exported(request, tokenizers, tmp_path_factory) -> tuple[str, Tokenizer, Path]:
    kind = request.param
    return kind, tokenizers[kind], export(kind, tokenizers[kind], tmp_path_factory.mktemp(kind))


def test_auto_tokenizer_reads_the_same_ids_and_text(exported):
    kind, tokenizer, folder = exported
    hf = transformers.AutoTokenizer.from_pretrained(folder)
    assert type(hf).__name__ == KINDS[kind][0]
    texts = TEXTS + stdlib_text().splitlines()[:300]
    ids = tokenizer.encode_batch(texts)
    assert hf(texts, add_special_tokens=False)["input_ids"] == ids
    assert [hf.decode(row) for row in ids] == [tokenizer.decode(row) for row in ids]
    # A char model keeps every space and newline, which a GPT-2 tokenizer reading its files would drop.
    assert kind != "char" or hf.decode(hf(TEXTS[1])["input_ids"]) == TEXTS[1]


def test_tokenizer_and_generation_config(exported):
    kind, tokenizer, folder = exported
    config = json.loads((folder / "tokenizer_config.json").read_text())
    eot = {"eos_token": tokenizer.eot_token} if tokenizer.eot_token else {}
    assert config["model_max_length"] == 64 and config.get("eos_token") == eot.get("eos_token")
    assert config["tokenizer_class"] == {"char": "PreTrainedTokenizerFast"}.get(kind, KINDS[kind][0])
    generation = transformers.GenerationConfig.from_pretrained(folder)
    assert generation.eos_token_id == tokenizer.eot_id
    assert transformers.AutoConfig.from_pretrained(folder).eos_token_id == tokenizer.eot_id
    # Read back by radford: the same tokenizer, of the same kind.
    loaded = radford.load(folder).tokenizer
    assert type(loaded) is type(tokenizer) or (kind == "gpt2" and isinstance(loaded, BPE))
    assert loaded.to_json() == tokenizer.to_json()


def test_pipeline_continues_as_radford_does(exported):
    kind, tokenizer, folder = exported
    prompt = "def wrap(text, width"
    generator = transformers.pipeline("text-generation", model=str(folder), device="cpu")
    out = generator(prompt, max_new_tokens=12, do_sample=False, return_tensors=True)[0]["generated_token_ids"]
    # radford's greedy continuation of the same model, to the end-of-text token where the pipeline stops.
    model = radford.load(folder)
    ids = tokenizer.encode(prompt)
    new = [int(step) for step in model.generate(torch.tensor([ids]), max_new_tokens=12, temperature=0.0)]
    if tokenizer.eot_id in new:
        new = new[: new.index(tokenizer.eot_id) + 1]
    assert list(out) == ids + new
    assert generator.tokenizer.decode(out) == tokenizer.decode(ids + new)


def test_gpt1_export_reads_with_openai_gpt_tokenizers_from_its_pair(tokenizers, tmp_path):
    folder = export("gpt1", tokenizers["gpt1"], tmp_path)
    pair = tmp_path / "pair"
    pair.mkdir()
    for name in ("vocab.json", "merges.txt"):  # what OpenAIGPTTokenizer needs, without radford's tokenizer.json
        shutil.copy(folder / name, pair / name)
    texts = TEXTS + ["Karen was assigned a roommate her first year of college.", "Café, naïve: 你好 😀 <unk>"]
    expected = tokenizers["gpt1"].encode_batch(texts)
    for cls in (transformers.OpenAIGPTTokenizer, transformers.OpenAIGPTTokenizerFast):
        for source in (folder, pair):
            assert cls.from_pretrained(source)(texts, add_special_tokens=False)["input_ids"] == expected, (cls, source)


def test_export_without_tokenizer_removes_a_stale_one(tokenizers, tmp_path):
    export("bpe", tokenizers["bpe"], tmp_path)
    torch.manual_seed(0)
    model = GPT(vocab_size=50, block_size=16, n_layer=1, n_head=1, n_embd=8)
    write_checkpoint(Weights(GPT, dict(model.hparams), model.state_dict(), None), tmp_path / "bare.ckpt")
    convert(tmp_path / "bare.ckpt", tmp_path / "hf")
    left = {path.name for path in (tmp_path / "hf").iterdir()}
    assert left == {"config.json", "model.safetensors", "generation_config.json"}
    assert radford.load(tmp_path / "hf").tokenizer is None
