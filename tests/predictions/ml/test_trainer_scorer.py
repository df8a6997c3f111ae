import json
import os

import numpy as np
import pytest

from predictions.ml import artifacts
from predictions.ml.errors import ArtifactError, NotEnoughData, TrainingCancelled
from predictions.ml.scorer import Scorer
from predictions.ml.trainer import train_model

from .conftest import order_config, order_frame, random_frame


def test_lstm_beats_gbt_aggregates_when_order_carries_the_signal(trained_order_model):
    _, result, _, _ = trained_order_model
    assert result.arch == "lstm" and not result.scoreboard["fallback"]
    lstm_auc = result.metrics["roc_auc"]
    gbt_auc = result.baselines["gbt"]["roc_auc"]
    assert gbt_auc < 0.62, "aggregates should not see the order"
    assert lstm_auc > 0.85 and lstm_auc > gbt_auc + 0.2


def test_result_and_artifact(trained_order_model):
    _, result, directory, epochs = trained_order_model
    payload = result.to_dict()
    json.dumps(payload)
    assert payload["arch"] == "lstm" and payload["counts"]["validation_positives"] > 100
    assert set(payload["baselines"]) == {"prevalence", "recency", "logreg", "bgnbd", "gbt"}
    for figures in (payload["metrics"], *payload["baselines"].values()):
        assert {
            "roc_auc",
            "pr_auc",
            "log_loss",
            "brier",
            "calibration_error",
            "lift_top_decile",
            "precision",
            "recall",
            "f1",
        } <= set(figures)
    assert payload["curves"]["roc"] and payload["curves"]["reliability"]
    assert 0 < payload["threshold"] < 1 and payload["calibration"] in ("platt", "beta", "isotonic")
    assert [e for e, _ in epochs] == list(range(1, result.epochs_trained + 1))
    assert "val_auc" in epochs[0][1]
    manifest = artifacts.read_manifest(directory)
    assert {"candidates/lstm/model.keras", "calibration.json", "background.npz",
            "preprocessor/preprocessor.json"} <= set(manifest["files"])
    assert not [p for p in directory.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_same_seed_same_metrics(trained_order_model, tmp_path):
    frame, result, _, _ = trained_order_model
    again = train_model(frame, order_config(), artifact_dir=tmp_path / "again")
    assert again.metrics == result.metrics
    assert again.baselines == result.baselines


def test_scorer_scores_eligible_contacts_as_of_newest_event(trained_order_model):
    frame, result, directory, _ = trained_order_model
    scorer = Scorer(directory)
    scored = scorer.score(frame)
    assert scored.cutoff == frame.end_ts and len(scored) == 600
    assert ((scored.probabilities > 0) & (scored.probabilities < 1)).all()
    # the same contacts scored one by one (real-time path) agree with the batch
    one = scorer.score(frame, contacts=[3, 5])
    np.testing.assert_allclose(one.probabilities, scored.probabilities[[3, 5]], rtol=1e-5)
    # scoring at the validation cut-off reproduces the validation ranking quality
    at_validation = scorer.score(frame, cutoff=result.validation_cutoff)
    assert len(at_validation) == result.counts["validation_positives"] + result.counts["validation_negatives"]


def test_corrupt_or_missing_artifacts_fail_with_a_reason(trained_order_model, tmp_path):
    _, _, directory, _ = trained_order_model
    with pytest.raises(ArtifactError, match="does not exist"):
        Scorer(tmp_path / "nope")
    broken = tmp_path / "broken"
    os.system(f"cp -r {directory} {broken}")
    (broken / "candidates" / "lstm" / "model.keras").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="model.keras is corrupt"):
        Scorer(broken)
    (broken / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="no manifest.json"):
        Scorer(broken)


def test_ensemble_churn_training_end_to_end(tmp_path):
    frame = random_frame(n_contacts=300)
    config = order_config(
        target="churn",
        horizon_seconds=7 * 86400,
        lookback_seconds=14 * 86400,
        n_cutoffs=3,
        epochs=2,
        units=8,
        unit_choices=(8,),
        arch="stack",
        min_positives=20,
        min_negatives=20,
        min_report_class_count=5,
    )
    result = train_model(frame, config, artifact_dir=tmp_path / "ens")
    lines = {c["name"]: c for c in result.scoreboard["candidates"]}
    assert set(lines) == {"recency", "logreg", "bgnbd", "gbt", "stack"} and lines["stack"]["status"] == "succeeded"
    assert set(lines["stack"]["info"]["weights"]) == {"recency", "logreg", "bgnbd", "gbt"}
    scorer = Scorer(tmp_path / "ens")
    assert scorer.target == "churn" and scorer.arch == result.arch
    assert len(scorer.score(frame)) > 0


def test_not_enough_data_before_any_training(tmp_path):
    frame = random_frame(n_contacts=20)
    with pytest.raises(NotEnoughData, match="need 100"):
        train_model(frame, order_config(), artifact_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_cancellation_and_time_limit(tmp_path):
    frame = order_frame(n_contacts=300)
    calls = []

    def cancel_on_third_check():
        calls.append(1)
        return len(calls) >= 3  # passes the pre-training checks, then stops inside fit

    with pytest.raises(TrainingCancelled):
        train_model(
            frame,
            order_config(epochs=50, batch_size=16),
            artifact_dir=tmp_path / "c",
            should_cancel=cancel_on_third_check,
        )
    assert not (tmp_path / "c").exists()
    result = train_model(
        frame,
        order_config(epochs=50, batch_size=16, time_limit_seconds=1, arch="auto"),
        artifact_dir=tmp_path / "t",
    )
    lines = {c["name"]: c for c in result.scoreboard["candidates"]}
    # the baselines always run; the rest is skipped once out of time, and the board says so
    assert all(lines[n]["status"] == "succeeded" for n in ("recency", "logreg", "bgnbd", "gbt"))
    assert any(c["status"] == "skipped" and "time budget" in c["reason"] for c in lines.values())
    assert (tmp_path / "t" / "manifest.json").exists()


def test_choices_and_reported_figures_use_separate_validation_halves(trained_order_model):
    _, result, _, _ = trained_order_model
    counts = result.counts
    validation = counts["validation_positives"] + counts["validation_negatives"]
    assert counts["selection_contacts"] + counts["report_contacts"] == validation
    assert abs(counts["selection_contacts"] - counts["report_contacts"]) <= 2
    assert counts["validation_halved"] == 1


def test_selection_split_is_stratified_disjoint_and_falls_back_on_tiny_sets():
    from predictions.ml.trainer import selection_split

    labels = np.array([1] * 101 + [0] * 400)
    select, report = selection_split(labels, np.random.default_rng(0), 20)
    assert not set(select) & set(report) and len(select) + len(report) == len(labels)
    assert labels[select].sum() == 50 and labels[report].sum() == 51
    tiny = np.array([1] * 30 + [0] * 400)  # 15 positives a half: below 20
    select, report = selection_split(tiny, np.random.default_rng(0), 20)
    assert list(select) == list(report) == list(range(len(tiny)))
