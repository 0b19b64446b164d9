"""A checkpoint runs no code of its choosing: not by naming a module to import, not by pickling a callable.

Three crafted inputs, each of which writes a marker file if its code runs: a checkpoint whose model class is a module
with an import-time effect (on ``sys.path``, as anything installed is), a checkpoint holding an object whose
``__reduce__`` calls a function, and a Hugging Face folder whose ``pytorch_model.bin`` pickles a foreign global. Each
goes to every way in: ``radford.load``, ``radford generate --checkpoint``, ``radford convert`` and ``radford fit
--ckpt_path`` (or ``--model.init_args.pretrained`` for the folder), in this process. None may run the code, and each
is refused in one line.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

import radford
from radford.cli import main
from radford.errors import RadfordError

MODULE = "radford_marker_module"  # the module a crafted checkpoint names; importing it writes the marker
HF_CONFIG = {
    "model_type": "gpt2",
    "architectures": ["GPT2LMHeadModel"],
    "vocab_size": 16,
    "n_positions": 16,
    "n_embd": 8,
    "n_layer": 1,
    "n_head": 1,
}


class WritesMarker:
    """Unpickled, it calls ``Path.write_text``: had radford run pickled code, the marker would exist."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[object, ...]]:
        return Path.write_text, (self.marker, "pickled code ran")


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "marker"


@pytest.fixture
def evil_module(tmp_path, marker, monkeypatch) -> Iterator[str]:
    """A module on ``sys.path`` that writes the marker when imported, as an installed package with side effects."""
    site = tmp_path / "site"
    site.mkdir()
    (site / f"{MODULE}.py").write_text(
        textwrap.dedent(f"""\
        from pathlib import Path
        Path({str(marker)!r}).write_text("imported")
        class Model:
            pass
    """)
    )
    monkeypatch.syspath_prepend(str(site))
    yield f"{MODULE}.Model"
    sys.modules.pop(MODULE, None)


pytestmark = pytest.mark.usefixtures("quiet_lightning")


def importing_checkpoint(path: Path, class_path: str) -> Path:
    """A checkpoint naming ``class_path`` wherever a checkpoint names a class: radford's record and LightningCLI's."""
    torch.save(
        {
            "state_dict": {"weight": torch.zeros(2)},
            "hyper_parameters": {"_class_path": class_path},
            "radford": {"class_path": class_path, "tokenizer_state": None},
        },
        path,
    )
    return path


def reducing_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {"weight": torch.zeros(2)}, "hyper_parameters": {"payload": WritesMarker(marker)}}, path)
    return path


def foreign_global_folder(folder: Path, marker: Path) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(HF_CONFIG))
    torch.save({"transformer.wte.weight": WritesMarker(marker)}, folder / "pytorch_model.bin")
    return folder


def ways_in(path: Path, tmp_path: Path, folder: bool = False) -> dict[str, Callable[[], None]]:
    """Every way a checkpoint gets into radford, each a call that must end in one error line."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abcdefgh ijklmnop\n" * 200)
    fit = (
        [
            "fit",
            "--recipe",
            "gpt2-tiny",
            "--data.init_args.tokenizer",
            "char",
            "--data.init_args.sources",
            f"[{corpus}]",
            "--trainer.fast_dev_run",
            "1",
            "--model.init_args.pretrained",
            str(path),
        ]
        if folder
        else ["fit", "--recipe", "dcgan-digits", "--trainer.fast_dev_run", "1", "--ckpt_path", str(path)]
    )
    return {
        "load": lambda: radford.load(path),
        "generate": lambda: main(["generate", "--checkpoint", str(path), "--prompt", "abc"]),
        "convert": lambda: main(["convert", str(path), str(tmp_path / ("converted.ckpt" if folder else "converted"))]),
        "fit": lambda: main(fit),
    }


def refused_in_one_line(call: Callable[[], None], capsys) -> str:
    """The error line of a call that must refuse: a RadfordError (the API) or exit 2 with one line (the CLI)."""
    capsys.readouterr()
    try:
        call()
    except RadfordError as error:
        message = str(error)
        assert "\n" not in message
        return message
    except SystemExit as exit_:
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert exit_.code == 2 and len(lines) == 1 and lines[0].startswith("radford: error: "), lines
        return lines[0]
    raise AssertionError("accepted")


def runs_nothing(call: Callable[[], None], marker: Path) -> None:
    """Whatever the call does (refuse, or fail some other way), the crafted code never ran."""
    with contextlib.suppress(RadfordError, SystemExit, pickle.UnpicklingError, ValueError):
        call()
    assert not marker.exists(), marker.read_text()


WAYS = ["load", "generate", "convert", "fit"]


@pytest.mark.parametrize("way", WAYS)
def test_a_class_path_is_never_imported(way, tmp_path, marker, evil_module, capsys):
    path = importing_checkpoint(tmp_path / "import.ckpt", evil_module)
    call = ways_in(path, tmp_path)[way]
    runs_nothing(call, marker)
    assert evil_module in refused_in_one_line(call, capsys)
    assert not marker.exists()


def test_the_evil_module_does_write_its_marker(evil_module, marker):
    """The check above can fail: importing the module the checkpoint names writes the marker."""
    __import__(MODULE)
    assert marker.read_text() == "imported"


@pytest.mark.parametrize("way", WAYS)
def test_a_pickled_callable_never_runs(way, tmp_path, marker, capsys):
    path = reducing_checkpoint(tmp_path / "reduce.ckpt", marker)
    call = ways_in(path, tmp_path)[way]
    runs_nothing(call, marker)
    assert "reduce.ckpt" in refused_in_one_line(call, capsys)


@pytest.mark.parametrize("save", [True, False], ids=["torch.save", "bare pickle"])
def test_the_pickled_callable_does_write_its_marker(tmp_path, marker, save):
    """The check above can fail: unpickling the checkpoint without weights_only writes the marker."""
    path = reducing_checkpoint(tmp_path / "reduce.ckpt", marker)
    if save:
        torch.load(path, weights_only=False)
    else:
        pickle.loads(pickle.dumps(WritesMarker(marker)))
    assert marker.read_text() == "pickled code ran"


@pytest.mark.parametrize("way", WAYS)
def test_a_foreign_global_in_pytorch_model_bin_never_runs(way, tmp_path, marker):
    folder = foreign_global_folder(tmp_path / "hf", marker)
    runs_nothing(ways_in(folder, tmp_path, folder=True)[way], marker)


@pytest.mark.parametrize("way", WAYS)
def test_a_foreign_global_in_pytorch_model_bin_is_refused_in_one_line(way, tmp_path, marker, capsys):
    folder = foreign_global_folder(tmp_path / "hf", marker)
    line = refused_in_one_line(ways_in(folder, tmp_path, folder=True)[way], capsys)
    assert "pytorch_model.bin" in line and "safetensors" in line
