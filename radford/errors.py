"""Errors a user can cause: one line that names the bad value and the valid choices."""

from __future__ import annotations

_ORIGINAL_TRACEBACK = "\nOriginal Traceback (most recent call last):\n"


class RadfordError(Exception):
    """A mistake in user input (recipe, path, name, data). The CLI prints it as one line, no traceback."""

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (_raised_elsewhere(args[0], type(self)),)
        super().__init__(*args)


def _raised_elsewhere(message: str, cls: type[BaseException]) -> str:
    """The error's own message when torch re-raises one from a DataLoader worker or its pin-memory thread.

    torch sends the worker's exception as text and rebuilds it in the main process as ``cls("Caught RadfordError in
    DataLoader worker process 0.\\nOriginal Traceback (most recent call last):\\n...\\nradford.errors.RadfordError:
    <message>")`` (``torch._utils.ExceptionWrapper.reraise``): a traceback where the user must see one line. The
    message is what follows the last line naming ``cls``, as ``traceback`` formats it; anything else is kept as
    given."""
    if not (message.startswith(f"Caught {cls.__name__} ") and _ORIGINAL_TRACEBACK in message):
        return message
    name = cls.__qualname__ if cls.__module__ in ("__main__", "builtins") else f"{cls.__module__}.{cls.__qualname__}"
    _, found, original = message.rpartition(f"\n{name}: ")
    return original.rstrip("\n") if found and original.strip() else message
