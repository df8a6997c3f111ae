"""Settings for the test suite: the same as production, with its own var dir (broker folders,
artifacts, SQLite file) so a running demo worker never takes a test's tasks."""

import os
from pathlib import Path

os.environ.setdefault("FUNNEL_VAR_DIR", str(Path(__file__).resolve().parents[2] / "var" / "test"))

from funnel_site.settings.base import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast user creation in tests

# Tests call the API thousands of times from one address and key: throttling is tested with its
# own rates (tests/test_production.py), not in every test.
FUNNEL_THROTTLE_RATES = {"failed_key": "100000/min", "api_key": "1000000/min"}
