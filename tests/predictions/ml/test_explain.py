import json

from predictions.ml.explain import event_phrase, explain_contacts, humanize_seconds
from predictions.ml.scorer import Scorer


def test_humanize_and_phrases():
    assert humanize_seconds(19 * 86400 + 5) == "19 days"
    assert humanize_seconds(2 * 86400) == "2 days"
    assert humanize_seconds(3600) == "1 hour"
    assert humanize_seconds(70 * 86400) == "10 weeks"
    assert event_phrase("cart") == "Added to cart" and event_phrase("Order Completed") == "Purchased"
    assert event_phrase("webinar") == 'Did "webinar"'


def test_explanations_name_the_order_pattern_in_plain_words(trained_order_model):
    frame, result, directory, _ = trained_order_model
    scorer = Scorer(directory)
    contacts = [0, 1, 2, 3, 4, 5]
    explanations = explain_contacts(scorer, frame, contacts, top_k=3, nsamples=50)
    assert [e.contact for e in explanations] == contacts
    scored = scorer.score(frame, contacts=contacts)
    for explanation, probability in zip(explanations, scored.probabilities, strict=False):
        assert abs(explanation.probability - probability) < 1e-5
        assert 1 <= len(explanation.factors) <= 3
        contributions = [abs(f.contribution) for f in explanation.factors]
        assert contributions == sorted(contributions, reverse=True)
        json.dumps(explanation.to_dict())
    texts = [f.text for e in explanations for f in e.factors]
    # the network relies on the cart / email sequence, so those events dominate the reasons
    assert any(t.startswith(("Added to cart", "Opened an email")) for t in texts), texts
    assert all(
        t.endswith("ago")
        or "in the last" in t
        or "in total" in t
        or t.startswith(("No activity", "Has never", "Spent", "Only", "Last", "Known for"))
        or "likely in the" in t or "so far" in t
        for t in texts
    )
