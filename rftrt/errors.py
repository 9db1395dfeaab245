"""The one exception type a user of rftrt sees.

Every error that is the user's to fix (a bad name, a bad file, a bad option) is raised as
:class:`RftrtError` with a single-line message that names the problem and what to do. The command
line turns it into one line on stderr and exit code 2; anything else is a bug and keeps its
traceback.
"""


class RftrtError(Exception):
    """A problem with the user's input, reported as one line."""
