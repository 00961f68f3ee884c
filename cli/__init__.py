"""The ``jobq`` command line: thin click commands over the ``jobq`` library."""
