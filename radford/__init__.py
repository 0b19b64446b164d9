"""radford: Alec Radford's papers as reproducible PyTorch Lightning recipes."""

from radford.errors import RadfordError

__version__ = "0.1.0"
__all__ = ["RadfordError", "__version__"]
