"""The model pages in a real headless browser: list, train form, live status, metrics and plots,
activate / cancel buttons, and a contact's explained score."""

from __future__ import annotations

from unittest import mock

import pytest

from predictions.models import ContactScore, ModelVersion
from tests.browser import chart_data, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def no_tasks():
    with mock.patch("predictions.services._send_training"), mock.patch("predictions.services.scoring_queue"):
        yield


def test_model_detail_shows_metrics_beside_baselines_plots_and_top_contacts(
    page, live_server, admin_login, synthetic_workspace, make_version
):
    version = make_version(synthetic_workspace)
    contact = synthetic_workspace.contacts.order_by("id").first()
    ContactScore.objects.create(workspace=synthetic_workspace, model_version=version, contact=contact,
                                target="purchase", probability=0.73, as_of=version.created_at,
                                factors=[{"text": "Added to cart 2 days ago", "contribution": 0.3, "kind": "event"}],
                                explained_at=version.created_at)
    login(page, live_server, *admin_login)
    page.goto(f"{live_server.url}/dashboard/acme/")
    page.click("header nav >> text=Models")
    assert page.inner_text("#versions").count("succeeded") == 1
    page.click(f"#versions >> text={version.pk}")
    assert page.inner_text("#status") == "succeeded" and page.inner_text("#active-badge") == "active"
    rows = page.locator("#metrics tbody tr")
    # the model, prevalence and the four baselines of the tournament (recency, logreg, BG/NBD, GBT)
    assert rows.count() == 6 and "gradient-boosted trees" in page.inner_text("#metrics")
    # make_version's model was trained with --arch lstm: the four baselines and the LSTM
    assert page.locator("#scoreboard tbody tr").count() == 5 and page.is_visible("#served-why")
    assert len(chart_data(page, "roc-plot")["datasets"][0]) >= 2
    assert len(chart_data(page, "reliability-plot")["datasets"][0]) >= 2
    page.click(f"#top-contacts >> text={contact.external_id}")
    assert page.inner_text("#prediction-purchase .probability") == "0.730"
    assert "Added to cart 2 days ago" in page.inner_text("#prediction-purchase")
    assert "No active churn model" in page.inner_text("#prediction-churn")


def test_train_form_errors_then_queues_and_cancel_button(page, live_server, admin_login, api, no_tasks):
    login(page, live_server, *admin_login)
    page.goto(f"{live_server.url}/dashboard/acme/models/")
    page.fill("input[name=horizon]", "0d")
    page.click("#train-form button[type=submit]")
    assert "horizon must be longer than zero" in page.inner_text("ul.messages")
    page.select_option("select[name=target]", "churn")
    page.fill("input[name=horizon]", "7d")
    page.fill("input[name=lookback]", "14d")
    page.click("#train-form button[type=submit]")
    page.wait_for_selector("#cancel")
    assert page.inner_text("#status") == "queued"
    version = ModelVersion.objects.get()
    assert version.target == "churn" and version.lookback_seconds == 14 * 86400
    page.click("#cancel")
    page.wait_for_selector("text=cancelled on request")
    assert page.inner_text("#status") == "cancelled"


def test_status_updates_live_while_training(page, live_server, admin_login, api):
    version = ModelVersion.objects.create(workspace=api.workspace, target="purchase", status="running",
                                          progress={"phase": "training", "epoch": 3, "val_auc": 0.61})
    login(page, live_server, *admin_login)
    page.goto(f"{live_server.url}/dashboard/acme/models/{version.pk}/")
    assert "epoch 3" in page.inner_text("#progress") and "0.610" in page.inner_text("#progress")
    ModelVersion.objects.filter(pk=version.pk).update(progress={"phase": "training", "epoch": 4, "val_auc": 0.7})
    page.wait_for_function("document.querySelector('#progress').textContent.includes('epoch 4')")
    ModelVersion.objects.filter(pk=version.pk).update(status="failed", failure_reason="boom on purpose")
    page.wait_for_selector("#failure")  # the poll saw the end and reloaded the page
    assert page.inner_text("#status") == "failed"


def test_other_members_get_404_on_models_pages(page, live_server, api, other_api, django_user_model):
    from funnel_site.events.models import Membership

    version = ModelVersion.objects.create(workspace=api.workspace, target="purchase", config={})
    user = django_user_model.objects.create_user("mia", password="pw-123456")
    Membership.objects.create(workspace=other_api.workspace, user=user)
    login(page, live_server, "mia", "pw-123456")
    assert page.goto(f"{live_server.url}/dashboard/acme/models/").status == 404
    assert page.goto(f"{live_server.url}/dashboard/globex/models/{version.pk}/").status == 404


def test_score_now_button_queues_a_run_and_shows_it(page, live_server, admin_login, synthetic_workspace,
                                                    make_version):
    from predictions.models import ScoringRun

    version = make_version(synthetic_workspace)
    login(page, live_server, *admin_login)
    with mock.patch("predictions.services._send_scoring"):  # no worker here: the run stays queued
        page.goto(f"{live_server.url}/dashboard/acme/models/{version.pk}/")
        page.click("#score-now")
        page.wait_for_selector("#last-run")
    run = ScoringRun.objects.get()
    assert run.model_version_id == version.pk and run.trigger == "page"
    assert f"Scoring run {run.pk} queued" in page.inner_text("ul.messages")
    assert "queued" in page.inner_text("#last-run")
