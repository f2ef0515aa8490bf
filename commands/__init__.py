"""The command line: one thin module per ``runner.py`` command."""
