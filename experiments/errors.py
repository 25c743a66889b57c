"""The error every layer of experiments raises for a command line that asks for something impossible."""


class UsageError(Exception):
    """The command line asks for something impossible; nothing was run or written (exit code 2)."""
