"""The one exception type for user mistakes: the CLI prints its message on one line and exits 2."""


class UserError(Exception):
    """A problem the user can fix (bad file, bad value); its message names the thing and the fix."""
