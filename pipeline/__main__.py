"""``python -m pipeline`` runs the ``order-import`` command."""

from pipeline.cli import main

main()
