"""User-facing errors: one clear line, exit code 2, no traceback (see `harness.cli`)."""


class UserError(Exception):
    """A mistake in the user's input (a file, a key, a value); the message names it."""
