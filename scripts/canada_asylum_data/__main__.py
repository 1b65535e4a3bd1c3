"""`python -m canada_asylum_data ...` runs the command-line interface."""

from .cli import cli

cli(prog_name="canada-asylum-data")
