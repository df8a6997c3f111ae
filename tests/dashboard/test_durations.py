"""The duration filter writes seconds the way the commands read them."""

import pytest

from funnel_site.dashboard.templatetags.durations import duration


@pytest.mark.parametrize("seconds,text", [(604800, "7d"), (1209600, "14d"), (86400, "1d"), (2419200, "28d"),
                                          (259200, "3d"), (5400, "90m"), (3600, "1h"), (90, "90s"),
                                          (0, "0s"), ("x", "")])
def test_duration(seconds, text):
    assert duration(seconds) == text
