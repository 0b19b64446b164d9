"""Hub ids (``gpt2``, ``org/name@revision``) wherever a checkpoint or pretrained tokenizer is named: read from a
Hugging Face cache that each test builds on disk, offline. No test touches the network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers
from huggingface_hub import constants, errors

import radford
from radford import hub
from radford.checkpoints import convert, read_weights
from radford.cli import main
from radford.errors import RadfordError
from radford.models.clip import CLIP
from radford.models.gpt import GPT, GPT1
from radford.tokenizers import Char
from radford.tokenizers.pretrained import Pretrained

COMMIT = "0123456789abcdef0123456789abcdef01234567"
GPT_SIZES = dict(vocab_size=96, n_positions=24, n_layer=2, n_head=2, n_embd=32)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache under tmp_path, offline. huggingface_hub reads HF_HOME, HF_HUB_CACHE and
    HF_HUB_OFFLINE once, when imported, so its module settings are patched too (as its own tests do)."""
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def snapshot(cache: Path, repo_id: str, ref: str = "main", commit: str = COMMIT) -> Path:
    """A cached snapshot folder as huggingface_hub lays it out (models--org--name/snapshots/<commit>, and
    refs/<ref> holding the commit), for the test to fill. (The hub client stores blobs and links them there; plain
    files read the same.)"""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    folder = repo / "snapshots" / commit
    folder.mkdir(parents=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    return folder


def save_gpt(folder: Path, model_type: str, seed: int = 0) -> None:
    """A random tiny transformers GPT-2 or OpenAI GPT saved with save_pretrained, with a char tokenizer."""
    torch.manual_seed(seed)
    if model_type == "gpt2":
        model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**GPT_SIZES, bos_token_id=None, eos_token_id=None))
    else:
        model = transformers.OpenAIGPTLMHeadModel(transformers.OpenAIGPTConfig(**GPT_SIZES))
    model.save_pretrained(folder)
    tokenizer = Char()
    tokenizer.train(["To be, or not to be: that is the question."])
    (folder / "tokenizer.json").write_text(tokenizer.to_json(), encoding="utf-8")


def save_clip(folder: Path) -> None:
    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        text_config=dict(
            vocab_size=99,
            hidden_size=32,
            intermediate_size=96,
            num_hidden_layers=1,
            num_attention_heads=4,
            max_position_embeddings=16,
            eos_token_id=98,
        ),
        vision_config=dict(
            hidden_size=48,
            intermediate_size=160,
            num_hidden_layers=1,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
            layer_norm_eps=1e-5,
        ),
        projection_dim=24,
    )
    transformers.CLIPModel(config).save_pretrained(folder)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[key], sb[key]) for key in sa)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gpt2", ("gpt2", None)),
        ("openai-community/openai-gpt", ("openai-community/openai-gpt", None)),
        ("openai/clip-vit-base-patch32@main", ("openai/clip-vit-base-patch32", "main")),
        ("org/name@" + COMMIT, ("org/name", COMMIT)),
        ("EleutherAI/gpt-neo-1.3B", ("EleutherAI/gpt-neo-1.3B", None)),
        # Paths: a checkpoint file, more than one folder, relative and home paths, names the hub refuses.
        ("last.ckpt", None),
        ("runs/last.ckpt", None),
        ("models/gpt2/model.safetensors", None),
        ("a/b/c", None),
        ("./gpt2", None),
        ("~/gpt2", None),
        ("/models/gpt2", None),
        ("-gpt2", None),
        ("org/na..me", None),
        ("org--x/name", None),
        ("", None),
    ],
)
def test_hub_id_rule(name, expected):
    assert hub.parse(name) == expected


@pytest.mark.parametrize(
    ("repo_id", "model_type", "cls"), [("gpt2", "gpt2", GPT), ("openai-community/openai-gpt", "openai-gpt", GPT1)]
)
def test_gpt_by_hub_id_equals_the_folder_load(hub_cache, tmp_path, repo_id, model_type, cls):
    folder = tmp_path / "folder"
    save_gpt(folder, model_type)
    save_gpt(snapshot(hub_cache, repo_id), model_type)
    by_id, by_folder = radford.load(repo_id), radford.load(folder)
    assert type(by_id) is type(by_folder) is cls
    assert by_id.hparams == by_folder.hparams
    assert_same_weights(by_id, by_folder)
    text = "not to be"
    assert by_id.tokenizer.encode(text) == by_folder.tokenizer.encode(text) == Pretrained(repo_id).encode(text)


def test_clip_by_hub_id_equals_the_folder_load(hub_cache, tmp_path):
    save_clip(tmp_path / "folder")
    save_clip(snapshot(hub_cache, "openai/clip-vit-base-patch32"))
    by_id, by_folder = radford.load("openai/clip-vit-base-patch32"), radford.load(tmp_path / "folder")
    assert isinstance(by_id, CLIP) and by_id.hparams == by_folder.hparams
    assert_same_weights(by_id, by_folder)


def test_revision_and_local_folders_first(hub_cache, tmp_path, monkeypatch):
    other = "f" * 40
    save_gpt(snapshot(hub_cache, "gpt2"), "gpt2", seed=0)
    save_gpt(snapshot(hub_cache, "gpt2", ref="v2", commit=other), "gpt2", seed=1)
    main_branch, tagged, by_commit = (
        read_weights(name).state_dict["transformer.wte.weight"] for name in ("gpt2", "gpt2@v2", f"gpt2@{other}")
    )
    assert torch.equal(tagged, by_commit) and not torch.equal(main_branch, tagged)
    # A folder of that name in the working directory is read, not the hub's.
    monkeypatch.chdir(tmp_path)
    save_gpt(tmp_path / "gpt2", "gpt2", seed=2)
    local = read_weights("gpt2").state_dict["transformer.wte.weight"]
    assert not torch.equal(local, main_branch) and not torch.equal(local, tagged)


def test_offline_and_not_cached_is_one_line(hub_cache):
    with pytest.raises(
        RadfordError,
        match=r"^org/missing is not in the Hugging Face cache .* HF_HUB_OFFLINE forbids "
        r"downloading it: .*give the path of a model folder",
    ):
        radford.load("org/missing")
    save_gpt(snapshot(hub_cache, "gpt2"), "gpt2")
    with pytest.raises(RadfordError, match=r"^gpt2@v9 is not in the Hugging Face cache"):
        radford.load("gpt2@v9")
    # Not a hub id: a missing checkpoint, and no hub look-up.
    with pytest.raises(RadfordError, match=r"^checkpoint runs/x/last.ckpt not found: give a radford .ckpt file"):
        radford.load("runs/x/last.ckpt")


def test_cli_commands_take_hub_ids(hub_cache, tmp_path, capsys):
    save_gpt(snapshot(hub_cache, "gpt2"), "gpt2")
    main(["generate", "--checkpoint", "gpt2", "--prompt", "to be", "--max_new_tokens", "5", "--temperature", "0"])
    assert capsys.readouterr().out.startswith("to be")
    convert("gpt2", tmp_path / "gpt2.ckpt")
    assert_same_weights(radford.load(tmp_path / "gpt2.ckpt"), radford.load("gpt2"))


def test_hub_files_cover_what_the_formats_read():
    """hub.py names the files to fetch itself (the formats import radford.checkpoints, which imports radford.hub):
    every config, tokenizer and weights file a format reads is among them."""
    from radford.models.clip_adapter import OPEN_CLIP_CONFIG, OPEN_CLIP_WEIGHTS, OPENAI_MERGES_FILE
    from radford.models.hf_folder import HF_CONFIG, HF_WEIGHTS, TOKENIZER_FILES

    assert {HF_CONFIG, OPEN_CLIP_CONFIG, OPENAI_MERGES_FILE, *TOKENIZER_FILES} <= set(hub.METADATA)
    assert hub.WEIGHTS == {HF_CONFIG: HF_WEIGHTS, OPEN_CLIP_CONFIG: OPEN_CLIP_WEIGHTS}


def test_download_fetches_configs_then_one_weights_file(tmp_path, monkeypatch):
    """Online (the hub client mocked): configs and tokenizer files in one snapshot, then the first weights file the
    repository has, safetensors before bin, and no other copy of the same weights."""
    import huggingface_hub

    folder = tmp_path / "snapshots" / COMMIT
    calls = []

    def snapshot_download(repo_id, revision, allow_patterns):
        calls.append(("snapshot", repo_id, revision, tuple(allow_patterns)))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
        return str(folder)

    def hf_hub_download(repo_id, filename, revision):
        calls.append(("file", repo_id, filename, revision))
        if filename == "model.safetensors":  # this repository has pytorch_model.bin only
            raise errors.RemoteEntryNotFoundError("404", response=_not_found())
        (folder / filename).write_bytes(b"weights")
        return str(folder / filename)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    assert hub.download("org/name", "v1") == folder
    assert calls[0][:3] == ("snapshot", "org/name", "v1")
    assert {"config.json", "open_clip_config.json", "tokenizer.json", "vocab.json", "merges.txt"} <= set(calls[0][3])
    assert not any(name.endswith((".bin", ".safetensors")) for name in calls[0][3])
    assert calls[1:] == [
        ("file", "org/name", "model.safetensors", COMMIT),
        ("file", "org/name", "pytorch_model.bin", COMMIT),
    ]
    calls.clear()
    assert hub.download("org/name", "v1") == folder  # cached weights: nothing more to fetch
    assert [call[0] for call in calls] == ["snapshot"]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            lambda: errors.LocalEntryNotFoundError("connection refused"),
            r"^cannot download org/name@v1 from the Hugging Face hub \(no network\?\) and it is not cached: "
            r"or give the path of a model folder \(`hf download org/name --local-dir DIR`",
        ),
        (
            lambda: errors.RepositoryNotFoundError("404", response=_not_found()),
            r"^org/name@v1 is neither a local path nor a model on the Hugging Face hub",
        ),
        (
            lambda: errors.RevisionNotFoundError("404", response=_not_found()),
            r"^org/name has no revision 'v1' on the Hugging Face hub$",
        ),
        (lambda: errors.GatedRepoError("403", response=_not_found()), r"^org/name@v1 is a gated model"),
    ],
)
def test_hub_errors_are_one_line(monkeypatch, error, expected):
    """Online (the hub client mocked, as it fails without network or for an unknown id)."""
    import huggingface_hub

    def snapshot_download(*args, **kwargs):
        raise error()

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    with pytest.raises(RadfordError, match=expected):
        radford.load("org/name@v1")


def _not_found():
    import httpx2  # huggingface_hub's HTTP client

    return httpx2.Response(404, request=httpx2.Request("HEAD", "https://huggingface.co/org/name"))


def test_tokenizer_paths_take_hub_ids(hub_cache, shared_data):
    """``tokenizer: {class_path: gpt2, init_args: {path: gpt2}}`` (and gpt1's, CLIP's) reads the cached hub files."""
    from radford.tokenizers import GPT2BPE, CLIPTokenizer, from_files
    from radford.tokenizers.gpt1 import GPT1BPE

    gpt2 = snapshot(hub_cache, "openai-community/gpt2")
    for name in ("encoder.json", "vocab.bpe"):
        (gpt2 / name).write_bytes((shared_data / "assets" / "gpt2" / name).read_bytes())
    gpt1 = snapshot(hub_cache, "openai-community/openai-gpt")
    for name in ("encoder_bpe_40000.json", "vocab_40000.bpe"):
        (gpt1 / name).write_bytes((shared_data / "assets" / "gpt1" / name).read_bytes())
    clip = snapshot(hub_cache, "openai/clip-vit-base-patch32")
    (clip / "bpe_simple_vocab_16e6.txt.gz").write_bytes(
        (shared_data / "assets" / "clip" / "bpe_simple_vocab_16e6.txt.gz").read_bytes()
    )
    text = "Karen was assigned a roommate her first year of college."
    assert GPT2BPE("openai-community/gpt2").encode(text) == GPT2BPE(str(gpt2)).encode(text)
    assert from_files("openai-community/gpt2").encode(text) == GPT2BPE(str(gpt2)).encode(text)
    assert GPT1BPE("openai-community/openai-gpt").encode(text) == GPT1BPE(str(gpt1)).encode(text)
    assert CLIPTokenizer("openai/clip-vit-base-patch32").encode(text) == CLIPTokenizer(
        str(clip / "bpe_simple_vocab_16e6.txt.gz")
    ).encode(text)
