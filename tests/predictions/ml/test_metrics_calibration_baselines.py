import json

import numpy as np
import pytest

from predictions.ml.calibration import Calibrator, choose_method, cross_fitted, fit_calibrator
from predictions.ml.metrics import (
    best_f1_threshold,
    curves,
    evaluate,
    expected_calibration_error,
    lift_at_top,
)


def test_evaluate_perfect_and_known_values():
    labels = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    scores = np.linspace(0.05, 0.95, 10)
    result = evaluate(labels, scores, threshold=0.5)
    assert result["roc_auc"] == 1.0 and result["pr_auc"] == 1.0
    assert result["lift_top_decile"] == pytest.approx(5.0)  # top 1 of 10 is positive, base rate 0.2
    assert result["precision"] == pytest.approx(2 / 5) and result["recall"] == 1.0
    assert set(result) >= {"log_loss", "brier", "calibration_error", "f1", "threshold"}
    json.dumps(result)


def test_calibration_error_and_lift():
    assert expected_calibration_error(np.array([0, 1]), np.array([0.0, 1.0])) == 0
    assert expected_calibration_error(np.array([0, 0]), np.array([0.9, 0.9])) == pytest.approx(0.9)
    assert lift_at_top(np.array([1] + [0] * 9), np.arange(10)[::-1] / 10) == pytest.approx(10)


def test_curves_are_json_ready_and_downsampled():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 5000)
    scores = np.clip(labels * 0.3 + rng.uniform(0, 0.7, 5000), 0, 1)
    points = curves(labels, scores)
    assert 2 <= len(points["roc"]) <= 101
    assert points["roc"][0]["fpr"] == 0 and points["roc"][-1]["tpr"] == 1
    assert sum(p["count"] for p in points["reliability"]) == 5000
    json.dumps(points)
    assert 0 < best_f1_threshold(labels, scores) < 1


@pytest.mark.parametrize("method", ["platt", "beta", "isotonic"])
def test_calibration_fixes_overconfident_scores(method):
    rng = np.random.default_rng(1)
    true_p = rng.uniform(0.05, 0.6, 4000)
    labels = (rng.random(4000) < true_p).astype(int)
    scores = np.clip(true_p * 1.6, 0, 0.99)  # systematically too high
    calibrator = fit_calibrator(scores, labels, method)
    assert expected_calibration_error(labels, calibrator(scores)) < expected_calibration_error(labels, scores)
    again = Calibrator.from_dict(json.loads(json.dumps(calibrator.to_dict())))
    np.testing.assert_allclose(again(scores), calibrator(scores))
    assert len(cross_fitted(scores, labels, method)) == 4000


def test_method_is_chosen_by_cross_fitted_log_loss():
    rng = np.random.default_rng(3)
    # a logistic link: Platt is right and, as the simplest, wins ties
    scores = rng.normal(size=3000)
    labels = (rng.random(3000) < 1 / (1 + np.exp(-scores))).astype(int)
    assert choose_method("auto", scores, labels) == "platt"
    # a step link Platt cannot follow, with plenty of data: isotonic wins
    hidden = rng.normal(size=6000)
    link = np.where(hidden > 0.5, 0.6, 0.05)
    step = (rng.random(6000) < link).astype(int)
    assert choose_method("auto", hidden, step) in ("isotonic", "beta")
    assert choose_method("platt", hidden, step) == "platt"


@pytest.mark.parametrize("method", ["platt", "beta", "isotonic"])
def test_calibration_keeps_the_models_ranking(method):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    scores = rng.uniform(0, 1, 3000)
    labels = (rng.random(3000) < scores**2).astype(int)
    calibrated = fit_calibrator(scores, labels, method)(scores)
    order = np.argsort(scores)
    assert np.all(np.diff(calibrated[order]) > 0)  # strictly increasing: no ties from isotonic steps
    assert roc_auc_score(labels, calibrated) == pytest.approx(roc_auc_score(labels, scores))
