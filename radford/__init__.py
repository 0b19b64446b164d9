"""radford: Alec Radford's papers as reproducible PyTorch Lightning recipes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from radford.errors import RadfordError

if TYPE_CHECKING:
    from radford.checkpoints import load

__version__ = "0.1.0"
__all__ = ["RadfordError", "__version__", "load"]


def __getattr__(name: str) -> Any:
    # radford.load imports torch and Lightning on first use only, so that `import radford` (and the CLI's
    # listings) stay fast.
    if name == "load":
        from radford.checkpoints import load

        return load
    raise AttributeError(f"module 'radford' has no attribute {name!r}")
