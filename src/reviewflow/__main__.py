"""`python -m reviewflow` is the `reviewflow` command."""

from .cli import main

main()
