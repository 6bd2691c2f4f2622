"""The one exception type for user-facing errors.

Anything the user can fix (a bad file, a wrong folder, a bad option) raises
:class:`PcsegError` with a one-line message. The command line prints it as
``pcseg: error: <message>`` and exits with status 2, without a traceback.
Everything else is a bug and keeps its traceback.
"""


class PcsegError(Exception):
    """A user-facing error with a one-line message."""
