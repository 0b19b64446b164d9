"""Text sources: files, folders, globs, ``stdlib`` (the embedded corpus every machine has), and datasets by name
(``tinyshakespeare``, ``rotten-tomatoes``: ``radford.data.datasets``)."""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from radford.data import datasets
from radford.errors import RadfordError

STDLIB = "stdlib"
# The Python standard library's own source, without its test suites: about 12 MB of real code and prose.
_STDLIB_SKIP = {"test", "tests", "idle_test", "site-packages", "__pycache__"}
# Break long documents where no byte-level BPE pre-token can span the cut: at a newline with
# non-space on both sides (a newline after spaces would join them into one pre-token).
_SAFE_CUT = re.compile(r"(?<=\S)\n(?=\S)")


def stdlib_files() -> list[Path]:
    root = Path(os.__file__).parent
    return sorted(p for p in root.rglob("*.py") if not _STDLIB_SKIP & set(p.relative_to(root).parts))


def _hidden(relative: Path) -> bool:
    """Hidden files and folders (``.git``, ``.venv``) and Python's byte-code caches are not text."""
    return any(part.startswith(".") or part == "__pycache__" for part in relative.parts)


def _expand(source: str) -> list[Path]:
    if source == STDLIB:
        return stdlib_files()
    path = Path(source).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
    if source in datasets.DATASETS:
        return [datasets.resolve(source)]
    if glob.has_magic(source):
        return sorted(Path(p) for p in glob.glob(os.path.expanduser(source), recursive=True) if Path(p).is_file())
    raise RadfordError(
        f"text source {source!r} not found: give a file, a folder, a glob, {STDLIB!r}, or {datasets.NAMES}"
    )


def resolve(sources: str | Sequence[str]) -> list[Path]:
    """Every file the sources name, in a stable order, each once."""
    if isinstance(sources, str):
        sources = [sources]
    files: dict[Path, None] = {}
    for source in sources:
        expanded = _expand(source)
        if not expanded:
            raise RadfordError(f"text source {source!r} matches no files")
        files.update(dict.fromkeys(p.resolve() for p in expanded))
    if not files:
        raise RadfordError(f"no text sources given: name a file, a folder, a glob, {STDLIB!r}, or {datasets.NAMES}")
    return list(files)


def fingerprint(files: Sequence[Path]) -> str:
    """Changes when any file is added, removed, resized or touched."""
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def read(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RadfordError(
            f"{str(path)!r} is not UTF-8 text (bad byte at offset {error.start}); convert it or leave it out"
        ) from error


def documents(files: Sequence[Path]) -> Iterator[str]:
    for path in files:
        yield read(path)


def chunks(text: str, size: int = 1 << 16) -> list[str]:
    """Cut a document into pieces of about ``size`` characters at safe places, so that encoding the
    pieces in parallel gives the same tokens as encoding the whole."""
    pieces, start = [], 0
    while len(text) - start > size:
        cut = _SAFE_CUT.search(text, start + size)
        if cut is None:
            break
        pieces.append(text[start : cut.end()])
        start = cut.end()
    pieces.append(text[start:])
    return pieces
