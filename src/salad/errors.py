"""The one exception type users see: a clear, one-line message naming file or key."""


class SaladError(Exception):
    """Bad input or configuration. The CLI prints `salad: error: <message>` and exits 1."""
