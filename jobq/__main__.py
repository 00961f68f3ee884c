"""``python -m jobq``: the command line, as the ``jobq`` script runs it."""

import importlib

# By name: in a checkout jobq.cli is the top-level cli/ folder (see jobq/cli/__init__.py).
importlib.import_module("jobq.cli.main").main()
