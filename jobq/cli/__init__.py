"""The ``jobq`` command line: thin click commands over the ``jobq`` library.

The commands live in the repository's top-level ``cli/`` folder; the wheel installs them
here, as ``jobq.cli``, and installs no top-level ``cli`` package. In a checkout this module
takes the folder as its package path, so that ``jobq.cli`` is the same code either way.
"""

from pathlib import Path

__path__ = [str(Path(__file__).resolve().parents[2] / "cli")]
