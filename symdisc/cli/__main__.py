"""`python -m symdisc.cli`."""

from symdisc.cli.app import main

main()
