"""The YAML of recipes: safe_load with YAML 1.2 floats (`1e-3`), no dates, and bounds on what one
document may expand to (nesting, values, characters: a "billion laughs" of aliases is refused
before it is expanded)."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from zoo.errors import RecipeError, quote

# YAML 1.2 floats that YAML 1.1 reads as strings: no dot or no exponent sign (`1e-3`, `1.0e3`).
_FLOAT = ("tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
          list("-+.0123456789"))

# What one YAML document (a recipe file, an override's value) may expand to, aliases followed: a
# 564-byte "billion laughs" of nested aliases is a few hundred nodes that expand to 9**9 values.
MAX_DEPTH = 32  # nesting of sections and lists
MAX_VALUES = 100_000  # nodes: mappings, lists and scalars
MAX_TEXT = 1_000_000  # characters of scalars, and bytes of a recipe file
MAX_EXTENDS = 32  # recipes in one `extends` chain


class Loader(yaml.SafeLoader):
    """safe_load plus YAML 1.2 floats and the bounds above; dates stay strings (no recipe
    field is a date)."""

    _depth = 0

    def compose_node(self, parent, index):
        if self._depth >= MAX_DEPTH:  # before PyYAML's recursive composer overflows the stack
            raise RecipeError(f"nested deeper than {MAX_DEPTH} levels (line {self.peek_event().start_mark.line + 1})")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node):
        _check_expansion(node, 0, {})
        return super().construct_document(node)

    def construct_yaml_int(self, node):
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # past Python's limit on the digits of an int read from text
            raise RecipeError(f"an integer of {len(node.value)} digits, too long to read "
                              f"(line {node.start_mark.line + 1})") from None


Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
Loader.add_implicit_resolver(*_FLOAT)
Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)


def _check_expansion(node, depth: int, seen: dict) -> tuple[int, int, int]:
    """(values, characters, levels) of `node` with its aliases expanded; past a bound, a
    RecipeError. `seen` holds each node measured so far: an alias is counted, not walked, again."""
    where = f"once its aliases are expanded (line {node.start_mark.line + 1})"
    if depth >= MAX_DEPTH:  # also where a recursive alias ends
        raise RecipeError(f"nested deeper than {MAX_DEPTH} levels {where}")
    if id(node) not in seen:
        if isinstance(node, yaml.ScalarNode):
            seen[id(node)] = 1, len(node.value), 1
        else:
            children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else node.value
            sizes = [_check_expansion(child, depth + 1, seen) for child in children]
            seen[id(node)] = (1 + sum(s[0] for s in sizes), sum(s[1] for s in sizes),
                              1 + max((s[2] for s in sizes), default=0))
    values, text, levels = seen[id(node)]
    if depth + levels > MAX_DEPTH:
        raise RecipeError(f"nested deeper than {MAX_DEPTH} levels {where}")
    if values > MAX_VALUES or text > MAX_TEXT:
        raise RecipeError(f"more than {MAX_VALUES} values or {MAX_TEXT} characters {where}")
    return values, text, levels


class Dumper(yaml.SafeDumper):
    """safe_dump that quotes the strings Loader would read as floats (`'1e3'`)."""


Dumper.add_implicit_resolver(*_FLOAT)


def read_yaml(path: Path) -> dict:
    try:
        if path.stat().st_size > MAX_TEXT:
            raise RecipeError(f"larger than {MAX_TEXT} bytes; a recipe is a few kilobytes")
        data = yaml.load(path.read_bytes().decode("utf-8"), Loader=Loader)
    except OSError as err:
        raise RecipeError(f"{path}: cannot read ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise RecipeError(f"{path}: not UTF-8 text (byte {err.object[err.start]:#04x} "
                          f"at offset {err.start})") from None
    except yaml.YAMLError as err:
        raise RecipeError(f"{path}: not valid YAML ({quote(str(err).splitlines()[0], as_repr=False)})") from None
    except RecipeError as err:  # a bound (above, or Loader's)
        raise RecipeError(f"{path}: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping, got {type(data).__name__}")
    return data
