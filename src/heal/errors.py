"""The one exception type for errors a user can cause and fix.

The CLI turns a `HealError` into exit code 2 and a single line on stderr, never a traceback. The message should
name the file, row or field at fault and say what to do about it.
"""


class HealError(Exception):
    """A user-fixable problem: bad input file, missing column, wrong flag, unusable model name."""
