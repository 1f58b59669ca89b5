"""The one error type scripts turn into a one-line message and a non-zero exit."""


class UsageError(Exception):
    """Bad input from the user: the message names the flag and the fix."""

    def __init__(self, flag: str, problem: str, fix: str | None = None):
        self.flag = flag
        message = f"{flag}: {problem}" if flag else problem
        if fix:
            message += f"; {fix}"
        super().__init__(message)
