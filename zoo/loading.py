"""`zoo.load_model(source)`: a Keras model from what a user names, the one place that tells the
three kinds of source apart (`zoo.load_predictor` and `zoo predict` build on `resolve`):

* a run directory: its `model.keras` (the run's `recipe.yaml` must be there);
* a `.keras` file: inside a run directory (`best.keras`, `model.keras`: the run's recipe.yaml is
  beside it) or standalone (`zoo.create_model(...).save(path)`, a file sent to a user);
* a pretrained name as `zoo list --pretrained` prints it, "MODEL.TAG", or "MODEL" for its default
  tag: `zoo.create_model(MODEL, pretrained=TAG)`.

A compiled file loads compiled (as `keras.saving.load_model` does; `compile=False` skips it); what
a user can name wrongly is one `ZooError` line.
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import NamedTuple

from zoo import keras_classes
from zoo.errors import ZooError

RUN, FILE, PRETRAINED = "run", "file", "pretrained"
EXPECTED = "expected a run directory, a .keras file or a pretrained name such as digits_cnn.digits"


class Loaded(NamedTuple):
    """What `resolve` loaded. kind: RUN (a run directory, or a `.keras` file with the run's
    recipe.yaml beside it), FILE (a standalone `.keras` file) or PRETRAINED (a pretrained name).
    run_dir: the run directory (RUN), else None. path: the `.keras` file loaded (RUN, FILE), else
    None. spec: the weights table row (`zoo.registry.WeightsSpec`, PRETRAINED), else None."""

    model: object
    kind: str
    run_dir: Path | None
    path: Path | None
    spec: object


def load_model(source, *, compile: bool = True):
    """A keras.Model with its weights from a run directory, a `.keras` file or "MODEL[.TAG]"
    (see the module doc)."""
    return resolve(source, compile=compile).model


def resolve(source, *, compile: bool = True) -> Loaded:
    """Load `source` (see the module doc) and say what it was."""
    keras_classes.register()  # done already where Keras loaded after `import zoo`; cheap then
    path = Path(source).expanduser()
    if not path.exists() and looks_like_a_name(str(source)):
        return _pretrained(str(source))
    from zoo.weights import load_model_file

    if path.is_dir():
        model_file = path / "model.keras"
        if not model_file.is_file():
            raise ZooError(f"no trained model at {model_file} ({EXPECTED})")
        if not (path / "recipe.yaml").is_file():
            raise ZooError(f"{path} is not a run directory: recipe.yaml is missing")
        return Loaded(load_model_file(model_file, compile=compile), RUN, path, model_file, None)
    if not path.is_file():
        raise ZooError(f"no trained model at {path} ({EXPECTED})")
    if path.name.endswith(".weights.h5"):
        raise ZooError(f"{path} holds weights only, not a model: build the model with "
                       f"zoo.create_model(NAME, pretrained={str(path)!r})")
    run_dir = path.parent if (path.parent / "recipe.yaml").is_file() else None
    return Loaded(load_model_file(path, compile=compile), RUN if run_dir else FILE, run_dir, path, None)


def looks_like_a_name(text: str) -> bool:
    """"model" or "model.tag": no folder, no file suffix of a model file."""
    return (re.fullmatch(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)?", text) is not None
            and not text.endswith((".keras", ".h5")))


def _pretrained(name: str) -> Loaded:
    from zoo.models import create_model, get_entry, get_spec, list_models, list_pretrained

    try:
        entry = get_entry(name.partition(".")[0])
    except ZooError:
        names = [*list_pretrained(), *list_models(pretrained=True)]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else " (`zoo list --pretrained` lists the names)"
        raise ZooError(f"{name}: no such run directory or model file, nor a pretrained model{hint}") from None
    if not entry.pretrained:
        raise ZooError(f"{name}: model {entry.name} has no pretrained weights; give a run directory or a "
                       ".keras file (`zoo list --pretrained` lists the weights)")
    spec = get_spec(name)
    return Loaded(create_model(spec.name), PRETRAINED, None, None, spec)
