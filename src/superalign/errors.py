"""Errors a user can act on. The CLI turns `UserError` into one message and exit code 2."""


class UserError(Exception):
    """Bad input the user can fix: the message names the file/line (or setting) and the fix."""


class BackendUnavailable(UserError):
    """A model path or server that cannot be reached or loaded."""


class AwaitingHumans(Exception):
    """The run stopped cleanly because a human decision is needed (labels or a promotion).

    The CLI prints the message (what to do, then `superalign run --resume`) and exits with code 3."""
