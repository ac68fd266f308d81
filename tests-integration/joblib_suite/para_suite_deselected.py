"""joblib 1.6.0 tests that the runner does not run against para, one reason each.

Keys are ``file::function`` (every parametrisation) or ``file::function[id]``.
Only tests that examine joblib internals that para does not provide belong
here, or behaviours that docs/migrating.rst documents as deliberate
differences (the reason then names the section).
"""

DESELECTED: dict[str, str] = {}
