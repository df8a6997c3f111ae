"""Calibration that reads well, BG/NBD against the paper, the HMM's states, the CRF stage tagger."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from predictions.ml.bgnbd import BGNBD, history_stats
from predictions.ml.calibration import choose_method, fit_calibrator
from predictions.ml.data import EventFrame
from predictions.ml.labels import Samples

CDNOW = Path(__file__).resolve().parents[3].parent / "shared" / "datasets" / "cdnow" / "CDNOW_sample.txt"


def _generated(n: int, seed: int = 0):
    """Scores and labels drawn from a known logistic link (the oracle for calibration)."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-(1.5 * scores - 2)))).astype(int)
    return scores, labels


@pytest.mark.parametrize("method", ["auto", "platt", "beta", "isotonic"])
def test_calibration_reads_well_and_keeps_the_ranking(method):
    fit_scores, fit_labels = _generated(600)  # a small validation set
    scores, _ = _generated(5000, seed=1)
    chosen = choose_method(method, fit_scores, fit_labels)
    p = fit_calibrator(fit_scores, fit_labels, chosen, min_bin=50)(scores)
    assert len(np.unique(np.round(p, 6))) >= 0.9 * len(scores)  # no large tied blocks
    order_p, order_s = np.argsort(p, kind="stable"), np.argsort(scores, kind="stable")
    assert (order_p == order_s).all()  # ranking by probability is ranking by raw score
    assert p.min() > 1 / (len(fit_labels) + 2) * 0.01 and p.max() < 1 - 1 / (len(fit_labels) + 2) * 0.01
    assert p.min() > 0.0 and p.max() < 1.0


def test_calibration_is_calibrated_on_the_generated_link():
    fit_scores, fit_labels = _generated(4000)
    scores, labels = _generated(20000, seed=2)
    p = fit_calibrator(fit_scores, fit_labels, choose_method("auto", fit_scores, fit_labels))(scores)
    truth = 1 / (1 + np.exp(-(1.5 * scores - 2)))
    assert np.mean(np.abs(p - truth)) < 0.02
    assert abs(p.mean() - labels.mean()) < 0.01


def _cdnow_frame() -> EventFrame:
    rows = [line.split() for line in CDNOW.read_text().splitlines() if line.strip()]
    day = {d: int(datetime.strptime(d, "%Y%m%d").replace(tzinfo=UTC).timestamp()) for d in {r[2] for r in rows}}
    # several orders of one customer on one day are one transaction, as in the paper
    pairs = np.unique(np.array([(int(r[0]), day[r[2]]) for r in rows]), axis=0)
    return EventFrame.from_arrays(pairs[:, 0], pairs[:, 1], ["buy"] * len(pairs), ["purchase"] * len(pairs))


@pytest.mark.skipif(not CDNOW.exists(), reason="the shared CDNOW data set is not here")
def test_bgnbd_reproduces_the_published_cdnow_estimates():
    frame = _cdnow_frame()
    cutoff = int(datetime(1997, 10, 1, tzinfo=UTC).timestamp())  # end of the 39-week calibration period
    ids = np.unique(frame.contact[frame.ts < cutoff])
    stats = history_stats(frame, Samples(ids, np.full(len(ids), cutoff), np.zeros(len(ids), np.int8)), "purchase")
    weeks = stats / [1, 7, 7]
    weeks[:, 2] -= 1 / 7  # the paper measures T to 1997-09-30 (38.86 weeks for a 1 January buyer)
    assert len(ids) == 2357 and weeks[:, 0].sum() == 2457  # customers and repeat transactions of the paper
    model = BGNBD().fit(weeks)
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # Fader, Hardie & Lee 2005
    for key, value in published.items():
        assert getattr(model, key) == pytest.approx(value, abs=0.005), key


def test_bgnbd_score_is_not_p_alive():
    model = BGNBD(r=0.243, alpha=4.414, a=0.793, b=2.426)
    # one-time buyers (x = 0): P(alive) is 1 for all, the chance of a purchase still falls with age
    one_timers = np.array([[0, 0, 5.0], [0, 0, 30.0]])
    assert np.allclose(model.p_alive(one_timers), 1.0)
    p = model.p_any(one_timers, 13)
    assert p[0] > p[1] > 0
    # a frequent buyer who went quiet long ago is less likely to buy than one who bought recently
    quiet, recent = np.array([[5, 5.0, 39.0]]), np.array([[5, 38.0, 39.0]])
    assert model.p_any(recent, 13)[0] > model.p_any(quiet, 13)[0]


def test_hmm_states_read_as_funnel_stages():
    from predictions.ml.hmm import StateModel

    rng = np.random.default_rng(0)
    # journeys: browse (interest=2) ... consider (3) ... buy (4), and dormant contacts (long pauses 7)
    tokens = np.full((400, 12), -1, np.int16)
    for i in range(400):
        seq = [2, 2, 3, 4] if i % 2 else [7, 2, 7, 7]
        seq = (seq * 3)[: rng.integers(6, 12)]
        tokens[i, -len(seq):] = seq
    model = StateModel(n_states=4, iterations=100, max_sequences=400).fit(tokens)
    assert sorted(model.names) == ["browsing", "buying", "considering", "dormant"]
    posterior = model.posterior(tokens)
    np.testing.assert_allclose(posterior.sum(axis=1), 1.0, atol=1e-6)
    ends_in_pause = tokens[:, -1] == 7
    dormant = model.names.index("dormant")
    assert posterior[ends_in_pause, dormant].mean() > posterior[~ends_in_pause, dormant].mean()


def test_crf_recovers_a_hidden_name_from_its_place_in_the_journey():
    from predictions.ml.stage_tagger import suggest_stages

    rng = np.random.default_rng(0)
    contact, ts, name = [], [], []
    for c in range(300):
        t = 1_700_000_000 + c * 1000
        # view -> cart -> checkout -> buy; "basket_add" is a second, unmapped name for adding to cart
        for step in ("view", "view", "cart" if c % 2 else "basket_add", "checkout", "buy"):
            t += int(rng.integers(30, 600))
            contact.append(c), ts.append(t), name.append(step)
    known = {"view": "interest", "cart": "consideration", "checkout": "consideration", "buy": "purchase"}
    suggestions = suggest_stages(np.array(contact), np.array(ts), np.array(name, object), None, known, {"basket_add"})
    assert [s.event_name for s in suggestions] == ["basket_add"]
    assert suggestions[0].stage == "consideration" and 0.5 < suggestions[0].confidence <= 1.0
    assert suggestions[0].occurrences == 150
