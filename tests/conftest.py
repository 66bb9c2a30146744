"""Hypothesis runs derandomized and without an example database, so CI is deterministic.

Set HYPOTHESIS_PROFILE=dev for random exploration (still no deadline: packs are compiled per example).
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
