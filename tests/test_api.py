"""radford.api, the public API for plugins: importing it is cheap, every name is documented and resolves to radford's
own object, which does what the docstring says; radford's plugin package and the new-plugin template import nothing
else from radford (the stability promise covers only radford.api)."""

from __future__ import annotations

import ast
import io
import json
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

import radford.api as api
from radford import checkpoints, cli
from tests.helpers import ROOT

PUBLIC = "radford.api"
# Public names that differ from the name of the object they export.
RENAMED = {"cli": "main", "dataset_path": "resolve", "find_recipe": "find", "plugin_names": "names"}


def radford_imports(folder: Path) -> dict[str, set[str]]:
    """The radford modules each Python file under ``folder`` imports (``from radford.x import y`` counts as x)."""
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        modules = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from radford import load` reaches past the API as surely as `import radford.checkpoints`.
                modules.add(node.module)
        found[str(path.relative_to(folder))] = {m for m in modules if m == "radford" or m.startswith("radford.")}
    return found


def outside_api(folder: Path) -> dict[str, set[str]]:
    return {file: modules - {PUBLIC} for file, modules in radford_imports(folder).items() if modules - {PUBLIC}}


def names_imported_from_api(folder: Path) -> set[str]:
    """Every name a ``from radford.api import ...`` under ``folder`` asks for."""
    return {
        alias.name
        for path in folder.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and node.module == PUBLIC
        for alias in node.names
    }


def test_import_is_lazy_and_dir_lists_every_name():
    probe = (
        "import json, sys, radford.api as api; names = dir(api); "
        "print(json.dumps([names, sorted(m for m in ('torch', 'lightning', 'numpy') if m in sys.modules)]))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    names, heavy = json.loads(result.stdout)
    assert heavy == []  # `import radford.api` imports no torch, Lightning or numpy
    assert set(api.__all__) <= set(names)


def test_every_public_name_is_documented_and_radfords_own():
    assert len(set(api.__all__)) == len(api.__all__)
    undocumented = [name for name in api.__all__ if f"``{name}" not in api.__doc__]
    assert not undocumented
    for name in api.__all__:
        obj = getattr(api, name)
        # A re-export of radford's object under its documented name, not a copy, a module or a third party's.
        assert obj.__module__.startswith("radford."), name
        assert obj.__name__ == RENAMED.get(name, name)
    with pytest.raises(AttributeError, match="no attribute 'GPT3'"):
        api.GPT3  # noqa: B018


def test_classes_are_what_the_docstring_says():
    assert issubclass(api.GPT, L.LightningModule)
    assert all(issubclass(cls, torch.nn.Module) for cls in (api.Block, api.CausalSelfAttention, api.MLP))
    assert issubclass(api.RadfordError, Exception) and issubclass(api.PluginLoadError, api.RadfordError)
    # The GPT a plugin subclasses is the one radford's registry, checkpoints and command line use.
    assert api.lookup("models", "gpt2").load() is api.GPT
    assert issubclass(api.lookup("tokenizers", "bpe").load(), api.Tokenizer)
    assert api.load is checkpoints.load and api.cli is cli.main


def test_registry_and_recipe_lookups():
    assert "gpt2" in api.plugin_names("models")
    assert all(isinstance(plugin, api.Plugin) and plugin.kind == "models" for plugin in api.plugins("models"))
    recipes = {recipe.name: recipe for recipe in api.list_recipes()}
    assert isinstance(recipes["gpt2-tiny"], api.Recipe)
    assert api.find_recipe("gpt2-tiny") == recipes["gpt2-tiny"].path
    with pytest.raises(api.RadfordError, match="unknown model 'gpt3'"):
        api.lookup("models", "gpt3")


def test_training_helpers():
    logits = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 0.0]])
    assert api.sample(logits, temperature=0).tolist() == [1, 0]
    assert api.sample(logits, top_k=1).tolist() == [1, 0]
    # Up over the warmup to the full rate, cosine down to the floor at decay_steps, then flat.
    steps = (0, 5, 10, 55, 100, 200)
    start, warm, peak, middle, floor, after = (api.warmup_cosine(step, 10, 100, 0.1) for step in steps)
    assert start < warm < peak == 1.0 and middle == pytest.approx(0.55) and floor == after == pytest.approx(0.1)
    layer = torch.nn.Linear(4, 4)
    optimizer = api.adamw(layer, 1e-3, (0.9, 0.95), 0.1)
    assert isinstance(optimizer, torch.optim.AdamW)
    decayed = {id(p) for group in optimizer.param_groups if group["weight_decay"] == 0.1 for p in group["params"]}
    assert decayed == {id(layer.weight)}  # matrices decay, biases do not


def test_image_helpers():
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (255, 0, 0)).save(buffer, format="PNG")
    image = api.resize_center_crop(api.open_image(buffer.getvalue()), 4)
    pixels = api.to_tensor(image)
    assert pixels.shape == (3, 4, 4) and pixels[0].min() == 1.0 and pixels[1:].max() == 0.0
    assert api.normalize(pixels, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))[:, 0, 0].tolist() == [1.0, -1.0, -1.0]


def test_linear_probe():
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 2
    features = rng.normal(size=(60, 3)) + 4.0 * labels[:, None]
    splits = [(features[i::3], labels[i::3]) for i in range(3)]
    result = api.linear_probe(*splits)
    assert isinstance(result, api.ProbeResult) and result.test_accuracy == 1.0


def test_scan_flags_imports_past_the_api(tmp_path):
    (tmp_path / "ok.py").write_text("import radford.api\nfrom radford.api import GPT\nimport radfordish\n")
    (tmp_path / "bad.py").write_text("from radford.models.gpt import GPT\nfrom radford import load\nimport radford\n")
    assert outside_api(tmp_path) == {"bad.py": {"radford.models.gpt", "radford"}}
    assert names_imported_from_api(tmp_path) == {"GPT"}


def test_igpt_plugin_imports_only_the_api():
    plugin = ROOT / "plugins" / "radford-igpt"
    imports = radford_imports(plugin)
    assert sum(PUBLIC in modules for modules in imports.values()) >= 4  # the scan sees the plugin's imports
    assert outside_api(plugin) == {}
    used = names_imported_from_api(plugin)
    assert {"GPT", "load"} <= used <= set(api.__all__)


def test_new_plugin_template_imports_only_the_api(tmp_path, capsys):
    cli.main(["new-plugin", "scanned", "--dir", str(tmp_path)])
    package = tmp_path / "radford-scanned"
    assert sum(PUBLIC in modules for modules in radford_imports(package).values()) >= 3
    assert outside_api(package) == {}
    assert {"RadfordError", "lookup", "find_recipe"} <= names_imported_from_api(package) <= set(api.__all__)
