"""Sub-commands of the ``pcseg`` command line, one module each (see :mod:`pcseg.cli`)."""
