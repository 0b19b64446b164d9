"""The bundled recipes as a user runs them after ``pip install``: from an empty folder with no ``../shared`` beside it,
datasets by name (from the mirror a machine without network sets) and pretrained weights by hub id (from an offline
hub cache the test lays out). Every data module serves a batch; a recipe that needs the user's own data says so in
one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import transformers

from radford import recipes
from radford.errors import RadfordError
from radford.lightning_cli import run_lightning
from tests.test_hub import hub_cache, snapshot  # noqa: F401  (hub_cache is a fixture)

FRAGMENTS = ("size/", "strategy/", "precision/", "compile")  # pieces of a run, composed on a whole recipe
WHOLE = [r for r in recipes.list_recipes() if not r.name.startswith(FRAGMENTS)]
# The user's own data, which no name stands for: the recipe says so in one line.
NEEDS_USER_DATA = {
    "dcgan": "data.init_args.source",
    "clip-vit-b-32": "data.init_args.train",
    "clip-rn50": "data.init_args.train",
}
# The embedded standard library is a corpus of 12 MB: a small file stands in for it, to keep the test fast.
STDLIB_USERS = ("gpt2", "gpt2-tiny", "gpt1", "gpt2-zeroshot")


@pytest.fixture
def user_machine(hub_cache, shared_data, tmp_path, monkeypatch) -> Path:  # noqa: F811
    """An empty working folder; datasets from the mirror; the hub models the recipes name, tiny, in the cache."""
    monkeypatch.setenv("RADFORD_DATASETS_MIRROR", str(shared_data / "datasets"))
    gpt2 = snapshot(hub_cache, "openai-community/gpt2")
    transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_head=1, n_embd=8)).save_pretrained(gpt2)
    for name in ("encoder.json", "vocab.bpe"):
        shutil.copy(shared_data / "assets" / "gpt2" / name, gpt2)
    gpt1 = snapshot(hub_cache, "openai-community/openai-gpt")
    transformers.OpenAIGPTLMHeadModel(transformers.OpenAIGPTConfig(n_layer=1, n_head=1, n_embd=8)).save_pretrained(gpt1)
    for name in ("encoder_bpe_40000.json", "vocab_40000.bpe"):
        shutil.copy(shared_data / "assets" / "gpt1" / name, gpt1)
    clip = snapshot(hub_cache, "openai/clip-vit-base-patch32")
    shutil.copy(shared_data / "assets" / "clip" / "bpe_simple_vocab_16e6.txt.gz", clip)
    work = tmp_path / "work"
    work.mkdir()
    (work.parent / "corpus.txt").write_text("The quick brown fox jumps over the lazy dog.\n" * 4000)
    monkeypatch.chdir(work)
    assert not (work.parent / "shared").exists() and not (work / ".." / ".." / "shared").exists()
    return work


def test_no_bundled_recipe_names_the_development_layout():
    for recipe in recipes.list_recipes():
        text = recipe.path.read_text(encoding="utf-8")
        assert "../shared" not in text and "path/to" not in text, recipe.name


@pytest.mark.parametrize("recipe", WHOLE, ids=lambda r: r.name)
def test_every_recipe_serves_data_on_a_users_machine(recipe, user_machine):
    args = ["--recipe", recipe.name]
    if recipe.name in STDLIB_USERS:
        args.append(f"--data.init_args.sources=[{user_machine.parent / 'corpus.txt'}]")
    if recipe.name in NEEDS_USER_DATA:
        with pytest.raises(RadfordError) as error:
            with torch.device("meta"):
                cli = run_lightning(args, run=False)
            cli.datamodule.setup("fit")
            cli.datamodule.train_dataloader()
        message = str(error.value)
        assert "\n" not in message and NEEDS_USER_DATA[recipe.name] in message, message
        return
    with torch.device("meta"):  # the paper-sized models cost nothing; the data is real
        cli = run_lightning(args, run=False)
    data = cli.datamodule
    data.prepare_data()
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch is not None
    assert not any(p.name == "shared" for p in user_machine.parent.iterdir())
