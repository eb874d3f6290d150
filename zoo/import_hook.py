"""Code run around a module's first import: `around_import(name, run)` has the import of `name`
executed as `run(module, execute)`, where `execute()` runs the module's own code (TensorFlow's
import inside a filter of its log lines; the zoo's Keras classes registered once Keras is loaded).
Standard library only: `import zoo` stays light."""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys


def around_import(name: str, run):
    """On the first import of `name` (none so far), call `run(module, execute)` in its place."""
    if name not in sys.modules and not any(isinstance(f, _Around) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _Around(name, run))


class _Around(importlib.abc.MetaPathFinder):
    """Stays on `sys.meta_path` until the module is executed: a `find_spec` probe without an import
    (TensorFlow probes for Keras before importing it) must leave it in place for the import."""

    def __init__(self, name: str, run):
        self.name, self.run, self._searching = name, run, False

    def find_spec(self, name, path=None, target=None):
        if name != self.name or self._searching:
            return None
        self._searching = True  # the finders after this one find the module's own spec
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._searching = False
        if spec is not None and spec.loader is not None:
            spec.loader = _AroundLoader(spec.loader, self)
        return spec


class _AroundLoader(importlib.abc.Loader):
    def __init__(self, loader, finder: _Around):
        self.loader, self.finder = loader, finder

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        if self.finder in sys.meta_path:
            sys.meta_path.remove(self.finder)
        module.__spec__.loader = module.__loader__ = self.loader  # the module sees its own loader
        self.finder.run(module, lambda: self.loader.exec_module(module))
