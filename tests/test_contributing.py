"""CONTRIBUTING.md's layout names every module and package of radford, each with its job."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def layout() -> dict[str, str]:
    """The layout block's entries: path -> its job (the text after the path, continuation lines included)."""
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    entries: dict[str, str] = {}
    path = None
    for line in block.splitlines():
        match = re.match(r"(\S+)\s+(.*)", line)
        if match:
            path, job = match.groups()
            entries[path] = job
        elif path and line.strip():
            entries[path] += " " + line.strip()
    return entries


def test_the_layout_names_every_module_with_its_job():
    entries = layout()
    package = ROOT / "radford"
    expected = [f"radford/{p.name}" for p in package.glob("*.py") if p.name != "__init__.py"]
    expected += [f"radford/{p.name}/" for p in package.iterdir() if (p / "__init__.py").is_file()]
    listed = set(entries)
    # A package is named as a folder, or through the modules in it (radford/models/gpt.py).
    missing = [name for name in expected if name not in listed and not any(e.startswith(name) for e in listed)]
    assert not missing, f"CONTRIBUTING.md's layout does not name {missing}"
    assert all(len(job.split()) >= 2 for job in entries.values()), entries  # a job, not a blank
    assert not [path for path in entries if path.startswith("radford/") and not (ROOT / path).exists()]
