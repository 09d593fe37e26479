"""Errors the CLI turns into one clear line on stderr and a non-zero exit."""


class InputError(ValueError):
    """Bad user input (file, option or data); the message is shown to the user as is."""
