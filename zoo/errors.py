"""Errors a user can cause: the CLI prints them as one line and exits with status 2."""


class ZooError(Exception):
    """A bad recipe, bad data, unknown name or bad weights file: the user's to fix."""


class RecipeError(ZooError):
    """The recipe (or an override) is invalid; the message names the key path."""


class DataError(ZooError):
    """A dataset is missing, empty or holds an unreadable file; the message names it."""
