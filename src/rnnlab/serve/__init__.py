"""``rnnlab serve``: the lab in a browser.

A local FastAPI app (``create_app``) that answers the three tasks from the bundled models and the
user's run folders -- a JSON API under ``/api`` and one page at ``/`` (plain HTML, CSS and JS shipped
in ``static/``, nothing fetched from the internet).
"""

from __future__ import annotations

__all__ = ["create_app", "QUEUE"]

QUEUE = 16  # requests of one task that may wait beyond those computed; past it: 503 (lanes.py, --queue)


def create_app(*args, **kwargs):
    """See :func:`rnnlab.serve.app.create_app` (imported lazily: FastAPI and torch are heavy)."""
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)
