"""Every command of the CLI, registered on the app in the order `reviewflow --help` lists them.

`common` holds the Typer app, the shared options and helpers; each other module is one group of
commands and registers them on that app when imported. None imports another command module.
"""

from __future__ import annotations

import sys

from ..errors import ReviewflowError

# Registration order is the order of `--help`: commands first (run ... validate, review, approve,
# reject, worker, workers, serve, ui), then the groups (db, templates, github).
# isort: off
from . import runs  # noqa: F401  (registers run, resume, cancel, pause, status, ...)
from . import db  # noqa: F401  (the db group)
from . import review  # noqa: F401  (review, approve, reject; the templates group)
from . import worker  # noqa: F401  (worker, workers)
from . import github  # noqa: F401  (the github group)
from . import server  # noqa: F401  (serve)
from . import ui  # noqa: F401  (ui)
from . import notifications  # noqa: F401  (notifications)
from . import schedule  # noqa: F401  (the schedule group, scheduler)

# isort: on
from .common import EXIT_BAD_INPUT, app, err

__all__ = ["app", "main"]


def main() -> None:
    """Entry point: run the Typer app; turn stray ReviewflowErrors into one-line errors."""
    try:
        app()
    except ReviewflowError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(EXIT_BAD_INPUT)
