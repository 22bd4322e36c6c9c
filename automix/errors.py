"""The one exception type the command line turns into a one-line error message."""


class AutomixError(Exception):
    """A problem with the user's input or settings, explained in one line."""
