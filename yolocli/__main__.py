"""``python -m yolocli`` runs the command line."""

from yolocli.cli import main

main()
