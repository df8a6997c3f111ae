"""Auto-activation compares a stored model with a new one on the contacts the new one reported on."""

from __future__ import annotations

import pytest

from .conftest import synthetic_frame

pytestmark = pytest.mark.django_db


def test_another_models_auc_is_measured_on_the_reported_half(workspace_with_key, make_version, trained_artifact):
    from predictions.scoring import validation_auc_of

    _, result = trained_artifact
    assert result.counts["validation_halved"] == 1 and len(result.report_contacts) == result.counts["report_contacts"]
    version = make_version(workspace_with_key[0])
    frame = synthetic_frame()
    on_report_half = validation_auc_of(version, frame, result.validation_cutoff, result.config,
                                       contacts=result.report_contacts)
    # the same model on the same contacts and cut-off: exactly the figure training reported
    assert on_report_half == pytest.approx(result.metrics["roc_auc"], abs=1e-6)
    on_everything = validation_auc_of(version, frame, result.validation_cutoff, result.config)
    assert on_everything != pytest.approx(on_report_half, abs=1e-9)
