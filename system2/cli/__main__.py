"""``python -m system2.cli`` (and ``torchrun -m system2.cli``) runs the ``system2`` command."""

from system2.cli import app

app()
