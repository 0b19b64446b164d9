"""Every recipe, bundled or from a plugin, is parsed by LightningCLI and built as a run builds it (the model on the
meta device, the data module constructed, the links applied), so recipes never rot (as litgpt's config hub test);
and no recipe says twice a value that the CLI links."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from radford import recipes
from radford.cli import main
from radford.lightning_cli import chosen_classes, expand_recipes, recipe_configs, run_lightning, shared_links
from tests.helpers import error_line

ALL = recipes.list_recipes()
CLIP_SIZES = [r for r in ALL if r.name.startswith("size/clip-")]


def composed(recipe: recipes.Recipe) -> tuple[str, ...]:
    """A fragment (size/, strategy/, precision/) on top of a whole recipe, which it only makes sense on."""
    folder = recipe.name.split("/")[0]
    if folder == "size":
        return ("clip-vit-b-32" if recipe in CLIP_SIZES else "gpt2", recipe.name)
    return ("gpt2-tiny", recipe.name) if folder in ("strategy", "precision", "compile") else (recipe.name,)


def recipe_args(*recipe_names: str) -> list[str]:
    return [arg for name in recipe_names for arg in ("--recipe", name)]


def parsed(*recipe_names: str, capsys) -> dict:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *recipe_args(*recipe_names), "--print_config"])
    assert exit_info.value.code in (0, None), capsys.readouterr().err
    return yaml.safe_load(capsys.readouterr().out)


def test_bundled_recipes_are_found():
    names = {r.name for r in ALL}
    assert {
        "gpt2",
        "gpt2-tiny",
        "shakespeare-char",
        "strategy/ddp",
        "strategy/fsdp",
        "precision/bf16-mixed",
        "precision/16-mixed",
        "size/gpt2-medium",
        "size/clip-vit-b-16",
        "size/clip-rn50",
    } <= names
    assert all(r.description for r in ALL), [r.name for r in ALL if not r.description]


@pytest.mark.parametrize("recipe", ALL, ids=lambda r: r.name)
def test_recipe_parses(recipe, capsys):
    config = parsed(*composed(recipe), capsys=capsys)
    assert "." in config["model"]["class_path"] and "." in config["data"]["class_path"]
    # The fragment's own values win over the base recipe's.
    for section, values in recipes.load(recipe.path).items():
        if section in ("trainer", "model") and isinstance(values, dict):
            expected = values.get("init_args", values)
            actual = config[section].get("init_args", config[section])
            for key, value in expected.items():
                if not isinstance(value, dict) and not key.endswith("+"):  # "callbacks+" appends, checked elsewhere
                    assert actual[key] == value, (section, key)


# -- built as a run builds it ------------------------------------------------------------------------------

# What a recipe leaves to the user (a corpus, pretrained weights, task files, CLIP's merges), given as small
# stand-ins; a fragment takes its base recipe's.
USER_INPUTS = {
    "gpt2": ["--data.init_args.sources=[{text}]", "--data.init_args.tokenizer.init_args.path={shared}/assets/gpt2"],
    "gpt2-tiny": ["--data.init_args.sources=[{text}]"],
    "gpt1": ["--data.init_args.sources=[{text}]"],
    "shakespeare-char": ["--data.init_args.sources=[{text}]"],
    "shakespeare-char-muon": ["--data.init_args.sources=[{text}]"],
    "gpt2-zeroshot": ["--model.init_args.pretrained={gpt}", "--data.init_args.tokenizer.init_args.path={gpt}"],
    **{
        name: [
            "--model.init_args.pretrained={gpt}",
            "--data.init_args.tokenizer.init_args.path={gpt}",
            "--data.init_args.train={task}",
            "--data.init_args.val={task}",
            "--data.init_args.test={task}",
        ]
        for name in ("gpt1-finetune", "gpt2-finetune")
    },
    **{
        name: ["--data.init_args.tokenizer.init_args.path={shared}/assets/clip/bpe_simple_vocab_16e6.txt.gz"]
        for name in ("clip-vit-b-32", "clip-rn50")
    },
    "clip-tiny": ["--data.init_args.shapes_train=200"],  # the captions its tokenizer learns from
    "igpt-mnist": ["--data.init_args.source={pixels}"],
}


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory) -> dict[str, str]:
    """Small files in place of a user's: text, a Hugging Face GPT-2 folder with its tokenizer, a labelled task
    file, and 14x14 grey images as MNIST's CSV rows."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from radford.tokenizers import BPE

    folder = tmp_path_factory.mktemp("stand-ins")
    text = "the quick brown fox jumps over the lazy dog; def fib(n): return n if n < 2 else fib(n - 1)\n" * 50
    (folder / "text.txt").write_text(text)
    tokenizer = BPE(vocab_size=300, min_frequency=1)
    tokenizer.train([text])
    # GPT-2's context of 1,024 positions: gpt2-zeroshot's windows are that long, and a shorter one is refused.
    GPT2LMHeadModel(
        GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=1024, n_embd=16, n_layer=1, n_head=2)
    ).save_pretrained(folder / "gpt")
    tokenizer.save(folder / "gpt")
    (folder / "task.jsonl").write_text(
        "".join(json.dumps({"text": f"example {i}", "label": i % 2}) + "\n" for i in range(4))
    )
    pixels = torch.randint(0, 256, (20, 14 * 14), generator=torch.Generator().manual_seed(0))
    (folder / "pixels.csv").write_text(
        "".join(",".join(map(str, [*row.tolist(), i % 10])) + "\n" for i, row in enumerate(pixels))
    )
    return {
        "text": str(folder / "text.txt"),
        "gpt": str(folder / "gpt"),
        "task": str(folder / "task.jsonl"),
        "pixels": str(folder / "pixels.csv"),
    }


def user_inputs(recipe: recipes.Recipe, stand_ins: dict[str, str], request) -> list[str]:
    args = [arg for name in composed(recipe) for arg in USER_INPUTS.get(name, [])]
    if any("{shared}" in arg for arg in args):
        stand_ins = {**stand_ins, "shared": str(request.getfixturevalue("shared_data"))}
    return [arg.format(**stand_ins) for arg in args]


@pytest.mark.parametrize("recipe", ALL, ids=lambda r: r.name)
def test_recipe_builds(recipe, stand_ins, request, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [*recipe_args(*composed(recipe)), *user_inputs(recipe, stand_ins, request)]
    with torch.device("meta"):  # every weight a shape only: the paper-sized models cost nothing
        cli = run_lightning(args, run=False)
    model, data = cli.model, cli.datamodule
    assert all(p.is_meta for p in model.parameters())
    # Each linked value reached the side that does not say it.
    links = shared_links(**chosen_classes(expand_recipes(args)[0]))
    for link in links:
        model_key = (link.source if link.apply_on == "parse" else link.target).rpartition(".")[2]
        data_key = (link.target if link.apply_on == "parse" else link.source).rpartition(".")[2]
        assert model.hparams[model_key] == getattr(data, data_key), link
    assert not list(tmp_path.iterdir())  # building writes nothing


@pytest.mark.parametrize("recipe", ALL, ids=lambda r: r.name)
def test_no_recipe_says_a_linked_value_twice(recipe):
    """Each linked name is written on one side only, in every YAML file a recipe reads (its bases too)."""
    configs = [config for name in composed(recipe) for config in recipe_configs(recipes.find(name))]
    expanded, _ = expand_recipes(recipe_args(*composed(recipe)))
    for link in shared_links(**chosen_classes(expanded)):
        section, _, name = link.target.partition(".init_args.")
        written = [config for config in configs if name in ((config.get(section) or {}).get("init_args") or {})]
        assert not written, f"{recipe.name} gives {link.target}, which the CLI sets from {link.source}"


def test_links_between_the_bundled_classes():
    """Each shared value flows one way, and only between classes that both take it."""

    def links(model: str, data: str) -> set[tuple[str, str, str]]:
        return set(shared_links(f"radford.models.{model}", f"radford.data.{data}"))

    vocab = ("data.vocab_size", "model.init_args.vocab_size", "instantiate")
    assert links("gpt.GPT", "text.TextData") == {
        ("model.init_args.block_size", "data.init_args.block_size", "parse"),
        vocab,
    }
    assert links("dcgan.DCGAN", "images.ImageData") == {
        ("model.init_args.image_size", "data.init_args.image_size", "parse"),
        ("model.init_args.channels", "data.init_args.channels", "parse"),
    }
    assert links("clip.CLIP", "pairs.PairData") == {
        ("model.init_args.image_size", "data.init_args.image_size", "parse"),
        ("model.init_args.context_length", "data.init_args.context_length", "parse"),
        vocab,
    }
    assert links("finetune.GPTFineTune", "tasks.TaskData") == {
        ("model.init_args.task", "data.init_args.task", "parse"),
        vocab,
    }
    assert links("mlstm.MLSTM", "bytes.ByteData") == {vocab}  # the mLSTM has no block_size: ByteData keeps its own
    # Zero-shot's context is the pretrained weights': it takes the data's windows, to check them against it.
    windows = ("data.sequence_length", "model.init_args.sequence_length", "instantiate")
    for data in ("text.TextData", "lambada.LambadaData"):
        assert links("zeroshot.ZeroShot", data) == {vocab, windows}
    assert set(shared_links("radford_igpt.model.IGPT", "radford_igpt.data.PixelData")) == {
        vocab,
        ("data.sequence_length", "model.init_args.block_size", "instantiate"),
    }


@pytest.mark.parametrize("fragment", CLIP_SIZES, ids=lambda r: r.name)
def test_clip_size_fragments_spell_out_the_named_sizes(fragment):
    from radford.models.clip import CLIP, SIZES

    spelled = recipes.load(fragment.path)["model"]["init_args"]
    with torch.device("meta"):
        built, named = CLIP(**spelled), CLIP(size=spelled["size"])
    assert dict(built.hparams) == dict(named.hparams)
    assert {recipes.load(r.path)["model"]["init_args"]["size"] for r in CLIP_SIZES} == set(SIZES)


# -- composition ----------------------------------------------------------------------------------------------


def test_later_recipe_wins(capsys):
    config = parsed("gpt2", "size/gpt2-xl", capsys=capsys)
    assert (config["model"]["init_args"]["n_layer"], config["model"]["init_args"]["n_embd"]) == (48, 1600)
    assert config["model"]["init_args"]["block_size"] == 1024  # kept from the base recipe


def test_a_recipe_builds_on_its_bases_in_order(capsys):
    config = parsed("clip-rn50", capsys=capsys)["model"]["init_args"]
    assert config["size"] == "RN50" and config["vision_layers"] == [3, 4, 6, 3]  # size/clip-rn50 over ViT-B/32's
    assert config["local_loss"] is True and config["warmup_steps"] == 2000  # kept from clip-vit-b-32
    assert (config["betas"], config["eps"]) == ([0.9, 0.999], 1e-8)  # its own values win


def test_a_base_beside_the_recipe_and_a_later_flag(capsys, tmp_path):
    (tmp_path / "common.yaml").write_text("base: gpt2-tiny\nmodel: {init_args: {n_layer: 2, n_head: 2}}\n")
    (tmp_path / "mine.yaml").write_text("base: [common.yaml]\nmodel: {init_args: {n_layer: 3}}\n")
    config = parsed(str(tmp_path / "mine.yaml"), "size/gpt2-medium", capsys=capsys)["model"]["init_args"]
    assert (config["n_layer"], config["n_embd"], config["block_size"]) == (24, 1024, 128)
    assert parsed(str(tmp_path / "mine.yaml"), capsys=capsys)["model"]["init_args"]["n_head"] == 2


def test_bad_bases_are_one_line(capsys, tmp_path):
    loop = tmp_path / "loop.yaml"
    loop.write_text("base: loop.yaml\n")
    assert error_line(capsys, "fit", "--recipe", str(loop)).endswith("is a base of itself: loop -> loop")
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: {gpt2: 1}\n")
    assert "base must be a recipe name or a list of names, got {'gpt2': 1}" in error_line(
        capsys, "fit", "--recipe", str(bad)
    )
    bad.write_text("base: [gpt2-tny]\n")
    assert "unknown recipe 'gpt2-tny'" in error_line(capsys, "fit", "--recipe", str(bad))


def test_recipe_by_path_and_with_suffix(capsys, tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model: {class_path: gpt2, init_args: {n_layer: 1}}\ndata: {class_path: text}\n")
    assert parsed(str(path), capsys=capsys)["model"]["init_args"]["n_layer"] == 1
    assert parsed("gpt2-tiny.yaml", capsys=capsys)["model"]["init_args"]["n_layer"] == 4


# -- a linked value is given once ------------------------------------------------------------------------------


def test_a_linked_value_on_the_linked_side_is_one_line(capsys):
    assert error_line(capsys, "fit", "--recipe", "gpt2-tiny", "--data.init_args.block_size", "64") == (
        "radford: error: data.init_args.block_size is linked to model.init_args.block_size, which sets it: give the "
        "value there, once"
    )
    assert error_line(capsys, "fit", "--recipe", "dcgan-digits", "--data.channels=3").startswith(
        "radford: error: data.init_args.channels is linked to model.init_args.channels"
    )
    assert error_line(capsys, "fit", "--recipe", "gpt2-tiny", "--model.init_args.vocab_size", "9") == (
        "radford: error: model.init_args.vocab_size is linked to the data module's vocab_size, which sets it: leave "
        "it out"
    )


def test_a_linked_value_left_unset_is_one_line(capsys):
    line = error_line(capsys, "fit", "--recipe", "clip-tiny", "--model.init_args.image_size", "null")
    assert line.startswith(
        "radford: error: model.init_args.image_size is not set, and the data module takes its value from there"
    )
