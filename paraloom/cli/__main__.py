"""``python -m paraloom.cli`` runs the ``paraloom`` command."""

from paraloom.cli.app import main

main()
