"""yolocli's command line: the only package that imports Click.

Library errors (`YolocliError`) become one line on stderr and exit status 1; usage errors
exit 2; Ctrl-C exits 130. stdout carries data only; people read stderr."""

from yolocli.cli.app import cli, main

__all__ = ["cli", "main"]
