"""rnnlab: recurrent networks from their equations, trained on real data.

The Python API (see rnnlab.api)::

    import rnnlab
    run = rnnlab.load_run("names")            # a bundled model, a run folder or a model folder
    run.predict(["Satoshi"])
    folder = rnnlab.train_task("names", epochs=3)  # options by their config field names
"""

from ._version import __version__
from .threads import ensure_reproducible_products

# Before torch runs its first matrix product: MKL's results then do not depend on the thread count, so
# that --threads auto may change it during a run without changing a seeded run's numbers (rnnlab.threads).
ensure_reproducible_products()

__all__ = ["__version__", "load_run", "train_task", "bundled_models"]


def load_run(spec, device: str = "cpu"):
    """A trained run or bundled model, ready to predict (see rnnlab.api.load_run)."""
    from .api import load_run as _load_run

    return _load_run(spec, device)


def train_task(task: str, out=None, log=print, **options):
    """Train a task with options by their config field names; returns the run folder (see rnnlab.api.train_task).
    (Not ``rnnlab.train``: that name is the training-loop module.)"""
    from .api import train_task as _train

    return _train(task, out=out, log=log, **options)


def bundled_models() -> list:
    """Names of the bundled trained models (models/)."""
    from .api import bundled_models as _bundled

    return _bundled()
