import pytest

from predictions.ml.config import TrainConfig, parse_duration
from predictions.ml.errors import ConfigError


def test_parse_duration():
    assert parse_duration("90s") == 90
    assert parse_duration("30m") == 1800
    assert parse_duration("1h") == 3600
    assert parse_duration("14d") == 14 * 86400
    assert parse_duration("2w") == 14 * 86400
    with pytest.raises(ConfigError):
        parse_duration("7 days")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"target": "ltv"}, "unknown target"),
        ({"horizon_seconds": 0}, "horizon must be positive"),
        ({"horizon_seconds": 10, "lookback_seconds": 5}, "must not be shorter"),
        ({"arch": "transformer"}, "unknown arch"),
        ({"time_limit_seconds": -1}, "time limit"),
    ],
)
def test_bad_config_is_rejected_with_a_clear_message(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**changes)


def test_round_trip():
    config = TrainConfig(target="churn", arch="auto", ensemble=True)
    assert TrainConfig.from_dict({**config.to_dict(), "future_field": 1}) == config


def test_automatic_epochs_scale_with_data():
    config = TrainConfig()
    assert config.epochs_for(100_000) == 3
    assert config.epochs_for(30_000) == 10
    assert config.epochs_for(500) == 20
    assert TrainConfig(epochs=5).epochs_for(100_000) == 5
