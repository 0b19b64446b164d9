"""benchmarks/README.md describes the scripts as they are: every script has an entry, every entry names a script that
exists, and every option an entry mentions is one its script takes. Nothing here runs a benchmark."""

from __future__ import annotations

import re

from tests.helpers import ROOT

BENCHMARKS = ROOT / "benchmarks"
HELPERS = {"run_radford.py"}  # imported by the scripts, not run


def entries() -> dict[str, str]:
    """The README's list: script path (relative to benchmarks/) -> its paragraph, continuation lines joined."""
    text = (BENCHMARKS / "README.md").read_text(encoding="utf-8")
    found = re.findall(r"^- `([^`]+\.py)`:(.*?)(?=^- |^\S|\Z)", text, re.M | re.S)
    return {script: " ".join(paragraph.split()) for script, paragraph in found}


def test_every_script_has_an_entry_and_every_entry_a_script():
    listed = entries()
    scripts = {path.name for path in BENCHMARKS.glob("*.py")} - HELPERS
    assert scripts <= set(listed), f"scripts the README does not describe: {scripts - set(listed)}"
    missing = [script for script in listed if not (BENCHMARKS / script).is_file()]
    assert not missing, f"the README describes scripts that do not exist: {missing}"


def test_every_option_an_entry_names_is_the_scripts():
    for script, paragraph in entries().items():
        source = (BENCHMARKS / script).read_text(encoding="utf-8")
        for option in set(re.findall(r"(?<![\w-])--[a-z][a-z0-9_]*", paragraph)):
            assert f'"{option}"' in source, f"benchmarks/README.md says {script} takes {option}; it does not"
