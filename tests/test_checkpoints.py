"""Checkpoints: Hugging Face folders load with transformers' logits, conversion round trips are exact, a real
``radford fit`` checkpoint loads with its tokenizer, a sharded (FSDP) folder loads and converts without running
pickled code, a full disk leaves no half-written file, and every bad file is one line naming it."""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import re
import shutil
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from lightning.pytorch.strategies import ModelParallelStrategy
from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
from torch.utils.data import DataLoader, TensorDataset
from transformers import GPT2Config, GPT2LMHeadModel, OpenAIGPTConfig, OpenAIGPTLMHeadModel, PreTrainedModel

import radford
from radford import checkpoints
from radford.checkpoints import RECORD, RecordForLoad, check_sharded, convert, saved_tokenizer
from radford.cli import main
from radford.errors import RadfordError
from radford.models.gpt import ARCHITECTURE, GPT, GPT1, pretrained_gpt
from radford.tokenizers.pretrained import Pretrained
from tests.helpers import error_line, quiet_trainer, radford_cli

SIZES = dict(vocab_size=96, n_positions=24, n_layer=2, n_head=2, n_embd=32)
NO_DROPOUT = dict(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
FAMILIES = {  # model_type: (transformers model, radford class)
    "gpt2": (
        lambda: GPT2LMHeadModel(
            GPT2Config(**SIZES, **NO_DROPOUT, activation_function="gelu_new", bos_token_id=None, eos_token_id=None)
        ),
        GPT,
    ),
    # OpenAI GPT's "gelu" is GELU's tanh approximation (GPT2's "gelu_new").
    "openai-gpt": (lambda: OpenAIGPTLMHeadModel(OpenAIGPTConfig(**SIZES, **NO_DROPOUT, afn="gelu")), GPT1),
}


def hf_model(model_type: str, seed: int = 0) -> PreTrainedModel:
    torch.manual_seed(seed)
    hf = FAMILIES[model_type][0]().eval()
    # Far from the small init, so that LayerNorm gains and biases and GELU's curvature all show in the logits.
    with torch.no_grad():
        for param in hf.parameters():
            param.normal_(0.0, 0.5)
    return hf


def hf_folder(model_type: str, folder: Path, weights: str = "model.safetensors") -> PreTrainedModel:
    """A Hugging Face folder as save_pretrained writes it; ``pytorch_model.bin`` as older transformers did."""
    hf = hf_model(model_type)
    hf.save_pretrained(folder)
    if weights == "pytorch_model.bin":  # transformers 5 writes safetensors only
        (folder / "model.safetensors").unlink()
        torch.save(hf.state_dict(), folder / weights)
    return hf


def logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model(ids)
    return out if isinstance(out, torch.Tensor) else out.logits


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def fit_checkpoint(tmp_path_factory, small_corpus) -> Path:
    """The last.ckpt of two steps of ``radford fit --recipe gpt2-tiny`` (BPE tokenizer trained on the corpus)."""
    run = tmp_path_factory.mktemp("fit")
    result = radford_cli(
        "fit",
        "--recipe",
        "gpt2-tiny",
        "--trainer.max_steps",
        "2",
        "--trainer.limit_val_batches",
        "0",
        f"--data.init_args.sources=[{small_corpus}]",
        cwd=run,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run / "runs" / "gpt2-tiny" / "version_0" / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("weights", ["model.safetensors", "pytorch_model.bin"])
@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_loads_hf_folder_with_transformers_logits(tmp_path, model_type, weights):
    hf = hf_folder(model_type, tmp_path, weights)
    model = radford.load(tmp_path)
    assert type(model) is FAMILIES[model_type][1]
    assert not model.training and model.tokenizer is None
    ids = torch.randint(SIZES["vocab_size"], (2, SIZES["n_positions"]))
    diff = (logits(model, ids) - logits(hf, ids)).abs().max().item()
    assert diff < 1e-4, f"max |logits diff| {diff}"


@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_conversions_round_trip_exactly(tmp_path, model_type):
    hf = hf_folder(model_type, tmp_path / "hf")
    convert(tmp_path / "hf", tmp_path / "a.ckpt")  # HF -> radford
    convert(tmp_path / "a.ckpt", tmp_path / "hf2")  # radford -> HF
    convert(tmp_path / "hf2", tmp_path / "b.ckpt")  # HF -> radford again

    a, b = (torch.load(tmp_path / name, weights_only=True) for name in ("a.ckpt", "b.ckpt"))
    assert_same_state(a["state_dict"], b["state_dict"])
    assert a[RECORD]["class_path"] == f"radford.models.gpt.{FAMILIES[model_type][1].__name__}"
    # transformers reads the exported folder and computes what the original computed.
    exported = type(hf).from_pretrained(tmp_path / "hf2").eval()
    assert json.loads((tmp_path / "hf2" / "config.json").read_text())["model_type"] == model_type
    ids = torch.randint(SIZES["vocab_size"], (2, SIZES["n_positions"]))
    assert torch.equal(logits(exported, ids), logits(hf, ids))
    # Lightning's own loader reads the converted checkpoint too.
    model = FAMILIES[model_type][1].load_from_checkpoint(tmp_path / "b.ckpt", weights_only=True)
    assert_same_state(model.state_dict(), a["state_dict"])


@pytest.mark.slow
def test_fit_checkpoint_loads_with_its_tokenizer(fit_checkpoint):
    model = radford.load(fit_checkpoint)
    checkpoint = torch.load(fit_checkpoint, weights_only=True)
    assert type(model) is GPT and not model.training
    assert checkpoint[RECORD]["class_path"] == "radford.models.gpt.GPT"
    assert_same_state(model.state_dict(), checkpoint["state_dict"])
    text = "def f(x):\n    return x"
    assert model.tokenizer.decode(model.tokenizer.encode(text)) == text
    assert model.tokenizer.to_json() == checkpoint["TextData"]["tokenizer"]  # the data module's tokenizer
    assert model.tokenizer.vocab_size == model.hparams.vocab_size
    # The tokenizer alone, for fine-tuning with the pre-training tokenizer.
    tokenizer_json = model.tokenizer.to_json()
    assert saved_tokenizer(fit_checkpoint).to_json() == Pretrained(str(fit_checkpoint)).to_json() == tokenizer_json
    assert Pretrained(str(fit_checkpoint)).eot_id == model.tokenizer.eot_id is not None
    arch, state_dict = pretrained_gpt(fit_checkpoint)
    assert arch == {name: checkpoint["hyper_parameters"][name] for name in ARCHITECTURE}
    assert_same_state(state_dict, checkpoint["state_dict"])


@pytest.mark.slow
def test_fit_checkpoint_round_trips_through_hf_by_the_cli(fit_checkpoint, tmp_path, capsys):
    main(["convert", str(fit_checkpoint), str(tmp_path / "hf")])
    main(["convert", str(tmp_path / "hf"), str(tmp_path / "back.ckpt")])
    assert capsys.readouterr().out.splitlines() == [f"wrote {tmp_path / 'hf'}", f"wrote {tmp_path / 'back.ckpt'}"]
    original = torch.load(fit_checkpoint, weights_only=True)
    back = torch.load(tmp_path / "back.ckpt", weights_only=True)
    assert_same_state(back["state_dict"], original["state_dict"])
    tokenizer = radford.load(fit_checkpoint).tokenizer.to_json()
    assert saved_tokenizer(tmp_path / "back.ckpt").to_json() == tokenizer  # through the folder's tokenizer.json
    assert (
        GPT2LMHeadModel.from_pretrained(tmp_path / "hf").config.vocab_size == original["hyper_parameters"]["vocab_size"]
    )
    model = GPT.load_from_checkpoint(tmp_path / "back.ckpt", weights_only=True)
    assert_same_state(model.state_dict(), original["state_dict"])
    assert radford.load(tmp_path / "back.ckpt").tokenizer.to_json() == tokenizer
    assert Pretrained(str(tmp_path / "hf")).to_json() == tokenizer


class Opaque:
    """Not tensors or plain data: weights_only loading refuses it."""


def truncated(path: Path, fit_checkpoint: Path) -> None:
    data = fit_checkpoint.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def plain_lightning(path: Path, fit_checkpoint: Path) -> None:
    checkpoint = torch.load(fit_checkpoint, weights_only=True)
    del checkpoint[RECORD]
    torch.save(checkpoint, path)


def hf_with(change: dict, remove: str | None = None):
    def write(path: Path, fit_checkpoint: Path) -> None:
        hf_folder("gpt2", path)
        config = json.loads((path / "config.json").read_text())
        (path / "config.json").write_text(json.dumps({**config, **change}))
        if remove:
            (path / remove).unlink()

    return write


def truncated_safetensors(path: Path, fit_checkpoint: Path) -> None:
    hf_folder("gpt2", path)
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (None, "not found"),
        (truncated, "truncated, corrupt"),
        (lambda path, _: path.write_bytes(bytes(range(256)) * 8), "truncated, corrupt"),
        (lambda path, _: torch.save({"weights": Opaque()}, path), "never runs pickled code"),
        (lambda path, _: torch.save({"foo": torch.zeros(2)}, path), "not a radford checkpoint"),
        (plain_lightning, "load_from_checkpoint"),
        (hf_with({"model_type": "llama"}), "model_type 'llama'); radford reads: "),
        (hf_with({"architectures": ["GPT2ForSequenceClassification"]}), "supported for gpt2: GPT2LMHeadModel"),
        (hf_with({"activation_function": "relu"}), "activation_function"),
        (hf_with({}, remove="model.safetensors"), "no weights"),
        (hf_with({"n_layer": 3}), "transformer.h.2.attn.c_attn.bias is missing (and 11 more)"),
        (lambda path, _: path.mkdir(), "is not a model folder radford reads"),
        (truncated_safetensors, "truncated or corrupt"),
    ],
    ids=[
        "missing",
        "truncated",
        "garbage",
        "pickled-object",
        "foreign-dict",
        "plain-lightning",
        "model-type",
        "architecture",
        "activation",
        "no-weights",
        "wrong-shapes",
        "empty-folder",
        "truncated-safetensors",
    ],
)
def test_bad_checkpoint_is_one_line_naming_it(tmp_path, fit_checkpoint, make, expected):
    path = tmp_path / "model.ckpt"
    if make is not None:
        make(path, fit_checkpoint)
    for read in (radford.load, pretrained_gpt):
        with pytest.raises(RadfordError) as error:
            read(path)
        message = str(error.value)
        assert "\n" not in message and str(path) in message and expected in message, message


@pytest.mark.slow
@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        (RECORD, "class_path", "radford.models.finetune.GPTFineTune", "holds a GPTFineTune, not a GPT's weights"),
        (RECORD, "class_path", "radford.models.gpt.Nope", "'radford.models.gpt.Nope', which no registered plugin"),
        ("hyper_parameters", "n_head", None, "holds no GPT weights: its checkpoint lacks n_head"),
    ],
)
def test_checkpoint_of_another_model_is_not_gpt_weights(tmp_path, fit_checkpoint, section, key, value, expected):
    checkpoint = torch.load(fit_checkpoint, weights_only=True)
    if value is None:
        del checkpoint[section][key]
    else:
        checkpoint[section][key] = value
    torch.save(checkpoint, tmp_path / "other.ckpt")
    with pytest.raises(RadfordError, match=re.escape(expected)):
        pretrained_gpt(tmp_path / "other.ckpt")


def test_checkpoint_without_tokenizer_says_so(tmp_path):
    hf_folder("gpt2", tmp_path / "hf")
    convert(tmp_path / "hf", tmp_path / "model.ckpt")
    assert radford.load(tmp_path / "model.ckpt").tokenizer is None
    with pytest.raises(RadfordError, match="holds no tokenizer"):
        Pretrained(str(tmp_path / "model.ckpt"))


@pytest.mark.slow
def test_convert_refuses_a_destination_of_the_wrong_kind(tmp_path, fit_checkpoint):
    hf_folder("gpt2", tmp_path / "hf")
    with pytest.raises(RadfordError, match=r"converts to a model folder, and .*out\.ckpt"):
        convert(fit_checkpoint, tmp_path / "out.ckpt")
    with pytest.raises(RadfordError, match=r".*/hf is a folder; a \.ckpt is a file"):
        convert(tmp_path / "hf", tmp_path / "hf")
    assert not (tmp_path / "out.ckpt").exists()


# -- sharded checkpoint folders (strategy/fsdp) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A sharded checkpoint folder as ``strategy/fsdp`` writes it (ModelParallelStrategy's own save: the weights and
    optimizer state through torch.distributed.checkpoint, the rest in meta.pt) after 2 steps of a tiny GPT, in one
    process; and the model's weights. tests/test_fsdp.py converts the folder of a real 2-process run (slow)."""
    folder = tmp_path_factory.mktemp("sharded")
    torch.manual_seed(0)
    data = torch.randint(64, (8, 17))
    model = GPT(vocab_size=64, block_size=16, n_layer=1, n_head=2, n_embd=32, warmup_steps=1, decay_steps=4)
    trainer = quiet_trainer(max_steps=2, callbacks=[RecordForLoad()])
    trainer.fit(model, DataLoader(TensorDataset(data[:, :-1], data[:, 1:]), batch_size=4))
    trainer.save_checkpoint(folder / "full.ckpt")
    checkpoint = torch.load(folder / "full.ckpt", weights_only=True)
    with warnings.catch_warnings():  # one process, no process group: torch says it assumes so
        warnings.simplefilter("ignore")
        ModelParallelStrategy(save_distributed_checkpoint=True).save_checkpoint(checkpoint, folder / "last.ckpt")
    return folder / "last.ckpt", model.state_dict()


def test_a_sharded_folder_loads_and_converts_like_a_ckpt(sharded, tmp_path, capsys):
    folder, weights = sharded
    assert {p.name for p in folder.iterdir()} == {".metadata", "__0_0.distcp", "meta.pt"}
    model = radford.load(folder)
    assert type(model) is GPT and not model.training
    assert_same_state(model.state_dict(), weights)
    assert pretrained_gpt(str(folder))[0]["n_embd"] == 32  # as --model.init_args.pretrained reads it

    main(["convert", str(folder), str(tmp_path / "one.ckpt")])
    main(["convert", str(folder), str(tmp_path / "hf")])
    assert capsys.readouterr().out.splitlines() == [f"wrote {tmp_path / 'one.ckpt'}", f"wrote {tmp_path / 'hf'}"]
    one = torch.load(tmp_path / "one.ckpt", weights_only=True)
    assert_same_state(one["state_dict"], weights)
    assert one[RECORD]["class_path"] == "radford.models.gpt.GPT" and "optimizer_states" not in one
    assert_same_state(GPT.load_from_checkpoint(tmp_path / "one.ckpt", weights_only=True).state_dict(), weights)
    hf = GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    ids = torch.randint(64, (2, 16))
    assert torch.allclose(logits(hf, ids), logits(model, ids), atol=1e-5)


class RunsCode:
    """Unpickled, it would write ``marker``: what a crafted index could do to any reader that trusts pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "ran"))


def test_a_sharded_folder_runs_no_pickled_code(sharded, tmp_path):
    folder = tmp_path / "last.ckpt"
    shutil.copytree(sharded[0], folder)
    marker = tmp_path / "marker"
    with open(folder / ".metadata", "wb") as file:
        pickle.dump(RunsCode(marker), file)
    with pytest.raises(RadfordError, match=r"\.metadata names objects other than .*never runs pickled code") as error:
        radford.load(folder)
    assert not marker.exists() and "\n" not in str(error.value)


def crafted_entry(folder: Path, sharded: Path, marker: Path) -> None:
    """A sharded folder whose non-tensor entry (where an optimizer keeps its param_groups) pickles ``RunsCode``."""
    folder.mkdir()
    with warnings.catch_warnings():  # one process, no process group: torch says it assumes so
        warnings.simplefilter("ignore")
        dcp.save({"optimizer_0": {"param_groups": [{"lr": RunsCode(marker)}]}}, checkpoint_id=folder, no_dist=True)
    shutil.copy(sharded / "meta.pt", folder / "meta.pt")


def test_a_sharded_folder_to_resume_from_is_read_safely_first(sharded, tmp_path, capsys, small_corpus, monkeypatch):
    check_sharded(sharded[0])  # a real one passes
    monkeypatch.chdir(tmp_path)
    folder, marker = tmp_path / "last.ckpt", tmp_path / "marker"
    crafted_entry(folder, sharded[0], marker)
    with pytest.raises(RadfordError, match=f"^{re.escape(str(folder))} holds pickled objects other than tensors"):
        check_sharded(folder)
    # Before Lightning resumes: it would read the entry with plain pickle.
    args = ["fit", "--recipe", "gpt2-tiny", "--trainer.max_steps", "1", f"--data.init_args.sources=[{small_corpus}]"]
    line = error_line(capsys, *args, "--ckpt_path", str(folder))
    assert "holds pickled objects other than tensors" in line and not marker.exists()


def test_the_crafted_entry_does_run_its_code(sharded, tmp_path):
    """The two checks above can fail: torch's own reading of the folder, as Lightning resumes, runs the code."""
    folder, marker = tmp_path / "last.ckpt", tmp_path / "marker"
    crafted_entry(folder, sharded[0], marker)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp_to_torch_save(folder, tmp_path / "out.pt")
    assert marker.read_text() == "ran"


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (".metadata", "cannot read the sharded checkpoint {}: UnpicklingError"),
        ("__0_0.distcp", "cannot read the sharded checkpoint {}: a shard is missing, truncated or corrupt"),
        ("meta.pt", "{}/meta.pt: truncated, corrupt"),
    ],
)
def test_a_broken_sharded_folder_is_one_line_naming_it(sharded, tmp_path, broken, expected):
    folder = tmp_path / "last.ckpt"
    shutil.copytree(sharded[0], folder)
    data = (folder / broken).read_bytes()
    (folder / broken).write_bytes(data[: len(data) // 8])  # the weights come first in the shard: cut into them
    with pytest.raises(RadfordError) as error:
        radford.load(folder)
    assert expected.format(folder) in str(error.value) and "\n" not in str(error.value), str(error.value)


# -- a full disk -------------------------------------------------------------------------------------------------


class FullDisk(io.FileIO):
    """A file on a disk that fills after ``ROOM`` bytes: writing more fails with ENOSPC, as the system's writes do."""

    ROOM = 4096

    def write(self, data) -> int:
        if self.tell() + len(data) > self.ROOM:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def test_a_full_disk_leaves_no_half_written_checkpoint(tmp_path, monkeypatch, capsys):
    hf_folder("gpt2", tmp_path / "hf")
    out = tmp_path / "out" / "model.ckpt"
    out.parent.mkdir()
    out.write_bytes(b"the previous checkpoint")
    capsys.readouterr()  # transformers' progress bars, writing the folder
    monkeypatch.setattr(checkpoints, "open", FullDisk, raising=False)  # what save_atomically opens
    line = error_line(capsys, "convert", str(tmp_path / "hf"), str(out), "--overwrite")
    assert line == f"radford: error: cannot write {out}: {os.strerror(errno.ENOSPC)}"
    assert [p.name for p in out.parent.iterdir()] == ["model.ckpt"]  # no temporary file left behind
    assert out.read_bytes() == b"the previous checkpoint"  # and the file it was to replace untouched

    fresh = tmp_path / "fresh.ckpt"
    with pytest.raises(RadfordError, match=f"^cannot write {re.escape(str(fresh))}: "):
        convert(tmp_path / "hf", fresh)
    assert not fresh.exists() and not list(tmp_path.glob(".fresh.ckpt*"))
