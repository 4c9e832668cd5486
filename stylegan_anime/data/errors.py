"""User-facing data errors.

The command line prints ``error: <message>`` and exits with status 2 for a :class:`DataError`,
without a traceback, so every message is a single line that names the offending path.
"""


class DataError(Exception):
    """A problem with the user's data (missing path, no images, stale pack...); message is one line."""


class UnreadableImage(Exception):
    """One input is not a decodable image (unknown format, truncated, corrupt, too large...): skipped, counted."""
