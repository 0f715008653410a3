"""User-facing errors: the message says what was wrong, where, and what to do."""


class AugsvcError(Exception):
    """An error meant for a person; the CLI prints it without a traceback."""
