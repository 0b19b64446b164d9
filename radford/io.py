"""Files written whole or not at all: a crash never leaves a half-written cache entry or checkpoint, and a write the
system refuses (a read-only folder, a full disk) is one line naming the file, not a traceback."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from radford.errors import RadfordError


@contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn an ``OSError`` met while writing ``path`` into one line naming it and the system's reason."""
    try:
        yield
    except OSError as error:
        # The file the system names where it is elsewhere: the folder that cannot be made, say (not the temporary
        # file beside ``path``).
        named = Path(str(error.filename)) if error.filename else None
        other = f" ({named})" if named is not None and named.parent != Path(path).parent else ""
        raise RadfordError(f"cannot write {path}: {error.strerror or error}{other}") from error


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary file and rename, so a crash never leaves a half-written cache entry."""
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            write(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
