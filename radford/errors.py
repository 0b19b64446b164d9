"""Errors a user can cause: one line that names the bad value and the valid choices."""


class RadfordError(Exception):
    """A mistake in user input (recipe, path, name, data). The CLI prints it as one line, no traceback."""
