"""rnnlab: recurrent networks from their equations, trained on real data.

The Python API (see rnnlab.api)::

    import rnnlab
    run = rnnlab.load_run("names")            # a bundled model, a run folder or a model folder
    run.predict(["Satoshi"])
    folder = rnnlab.train("names", epochs=3)  # options by their config field names
"""

import sys as _sys
import types as _types

from ._version import __version__


def load_run(spec, device: str = "cpu"):
    """A trained run or bundled model, ready to predict (see rnnlab.api.load_run)."""
    from .api import load_run as _load_run

    return _load_run(spec, device)


def train(task: str, out=None, log=print, **options):
    """Train a task with options by their config field names; returns the run folder (see rnnlab.api.train)."""
    from .api import train as _train

    return _train(task, out=out, log=log, **options)


def bundled_models() -> list:
    """Names of the bundled trained models (models/)."""
    from .api import bundled_models as _bundled

    return _bundled()


class _Package(_types.ModuleType):
    """The package module: importing the submodule ``rnnlab.train`` (the training loop) would otherwise
    replace the function ``rnnlab.train`` with that module (Python sets a package attribute to each
    submodule it imports). ``from rnnlab.train import fit`` still works: it reads sys.modules."""

    def __setattr__(self, name: str, value) -> None:
        if name in _API_FUNCTIONS and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


_API_FUNCTIONS = frozenset({"load_run", "train", "bundled_models"})
_sys.modules[__name__].__class__ = _Package
