class UserError(Exception):
    """A problem with the user's input: scripts print it as one line, without a traceback."""
