"""radford.api, the public API for plugins: every name resolves to radford's own object and is documented, and
radford's plugin package and the new-plugin template import nothing else from radford (the stability promise
covers only radford.api)."""

from __future__ import annotations

import ast
from pathlib import Path

import radford.api as api
from radford import checkpoints, registry
from radford.cli import main
from radford.models import gpt
from tests.helpers import ROOT

PUBLIC = "radford.api"


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


def test_every_public_name_resolves_and_is_documented():
    undocumented = [name for name in api.__all__ if f"``{name}" not in api.__doc__]
    assert not undocumented
    for name in api.__all__:
        assert getattr(api, name) is not None
    # Re-exports, not copies: a plugin's GPT is the GPT radford's checkpoints load.
    assert api.GPT is gpt.GPT and api.Block is gpt.Block and api.load is checkpoints.load
    assert api.lookup is registry.lookup and api.plugin_names is registry.names and api.cli is main


def test_scan_flags_imports_past_the_api(tmp_path):
    (tmp_path / "ok.py").write_text("import radford.api\nfrom radford.api import GPT\nimport radfordish\n")
    (tmp_path / "bad.py").write_text("from radford.models.gpt import GPT\nfrom radford import load\nimport radford\n")
    assert outside_api(tmp_path) == {"bad.py": {"radford.models.gpt", "radford"}}


def test_igpt_plugin_imports_only_the_api():
    plugin = ROOT / "plugins" / "radford-igpt"
    imports = radford_imports(plugin)
    assert sum(PUBLIC in modules for modules in imports.values()) >= 4  # the scan sees the plugin's imports
    assert outside_api(plugin) == {}


def test_new_plugin_template_imports_only_the_api(tmp_path, capsys):
    main(["new-plugin", "scanned", "--dir", str(tmp_path)])
    package = tmp_path / "radford-scanned"
    assert sum(PUBLIC in modules for modules in radford_imports(package).values()) >= 3
    assert outside_api(package) == {}

