"""Errors a user can cause: the CLI prints them as one line and exits with status 2."""
import reprlib
from pathlib import Path


class ZooError(Exception):
    """A bad recipe, bad data, unknown name or bad weights file: the user's to fix."""


class RecipeError(ZooError):
    """The recipe (or an override) is invalid; the message names the key path."""


class DataError(ZooError):
    """A dataset is missing, empty or holds an unreadable file; the message names it."""


QUOTE_CHARS = 80  # the most of a value that an error line quotes
_SHORT_REPR = reprlib.Repr()  # stops early: a huge value is never written out whole
_SHORT_REPR.maxlevel = 3
_SHORT_REPR.maxstring = _SHORT_REPR.maxother = _SHORT_REPR.maxlong = QUOTE_CHARS
_SHORT_REPR.maxlist = _SHORT_REPR.maxtuple = _SHORT_REPR.maxdict = _SHORT_REPR.maxset = 8


def quote(value, as_repr: bool = True, limit: int = QUOTE_CHARS) -> str:
    """A value as an error line quotes it: its repr (or str), cut to `limit` characters."""
    text = _SHORT_REPR.repr(value) if as_repr else str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def cannot_write(path, err: OSError) -> ZooError:
    """One line for a place the user named that cannot be written: the path and why (`No space
    left on device`, `Read-only file system`, `Permission denied`...)."""
    return ZooError(f"cannot write {path}: {err.strerror or err}")


def make_folder(path):
    """`mkdir -p path`, or a one-line ZooError naming it (`cannot_write`)."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ZooError(f"cannot write {path}: it is a file, not a folder") from None
    except OSError as err:
        raise cannot_write(path, err) from None
