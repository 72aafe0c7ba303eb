"""Hypothesis profiles: ``ci`` (the default) derandomizes the property tests, so a run of the
suite is the same on every machine and a CI run cannot fail by drawing a new example;
``HYPOTHESIS_PROFILE=explore`` draws fresh examples, to hunt for new
ones (`--hypothesis-seed=N` replays a run)."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
