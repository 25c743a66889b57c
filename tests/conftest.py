"""Hypothesis profiles of the suite.

A plain run keeps every property test's own ``@settings(max_examples=...)``, drawn from a fresh random
seed each time; on CI, Hypothesis loads its own derandomized "ci" profile by itself. ``make test-thorough``
runs ``pytest --hypothesis-profile=thorough``: every property test then draws at least
``THOROUGH_EXAMPLES`` examples (2000, or the environment variable of that name), to find the inputs that
break a test only rarely (a property must hold for any seed).
"""

import os

from hypothesis import settings

THOROUGH_EXAMPLES = int(os.environ.get("THOROUGH_EXAMPLES", 2000))

settings.register_profile("thorough", max_examples=THOROUGH_EXAMPLES, deadline=None, print_blob=True)


def pytest_collection_modifyitems(config, items):
    if config.getoption("--hypothesis-profile") != "thorough":
        return
    for item in items:
        test = getattr(item, "obj", None)
        own = getattr(test, "_hypothesis_internal_use_settings", None)
        # A test's own @settings outranks any profile, so raise its count where Hypothesis keeps it
        # (the attribute Hypothesis's pytest plugin itself reads and rewrites).
        if own is not None and own.max_examples < THOROUGH_EXAMPLES:
            test._hypothesis_internal_use_settings = settings(own, max_examples=THOROUGH_EXAMPLES)
