"""The numpy network (predictions/serving.py, predictions/gradients.py) gives the Keras model's outputs,
TensorFlow's gradients and SHAP GradientExplainer's explanations, for each network family."""

from __future__ import annotations

import numpy as np
import pytest

from tests.predictions.conftest import DAY, TINY, synthetic_frame

ARCHS = ["lstm", "gru", "rnn"]


@pytest.fixture(scope="module")
def frame():
    return synthetic_frame()


@pytest.fixture(scope="module", params=ARCHS)
def served(request, frame, tmp_path_factory):
    """(arch, Keras Scorer, LightScorer) of a tiny network artifact trained on the synthetic frame."""
    from predictions.ml import trainer
    from predictions.ml.config import TrainConfig
    from predictions.ml.scorer import Scorer
    from predictions.ml.trainer import train_model
    from predictions.serving import LightScorer

    arch = request.param
    # What is compared is the network, not the selection: on this tiny data a baseline may beat
    # the network (and would be served), so the network is served here whatever the scoreboard says.
    patch = pytest.MonkeyPatch()
    patch.setattr(trainer, "select", lambda entries, requested: (requested, "forced by the test"))
    config = TrainConfig(target="purchase", horizon_seconds=7 * DAY, lookback_seconds=28 * DAY, arch=arch,
                         **{**TINY, "epochs": 1})
    directory = tmp_path_factory.mktemp(arch) / "model"
    try:
        train_model(frame, config, artifact_dir=directory)
    finally:
        patch.undo()
    return arch, Scorer(directory), LightScorer(directory)


def test_numpy_network_equals_keras(served, frame):
    arch, keras_scorer, light = served
    assert light.network.arch == arch
    reference = keras_scorer.score(frame)
    probabilities, raw, _ = light.score_frame(frame, reference.contacts, reference.cutoff)
    assert len(reference) > 100
    np.testing.assert_allclose(raw, reference.raw_scores, rtol=0, atol=1e-5)
    np.testing.assert_allclose(probabilities, reference.probabilities, rtol=0, atol=1e-5)


def _points(keras_scorer, frame, count: int = 24):
    """Float core inputs between scored contacts and background rows (what expected gradients visit)."""
    import tensorflow as tf

    reference = keras_scorer.score(frame)
    feed = keras_scorer.inputs(frame, keras_scorer.samples(frame, reference.cutoff, reference.contacts[:count])
                               ).batch.inputs()
    background = keras_scorer.background.batch.inputs()
    encoder = keras_scorer.model.get_layer("encoder")

    def encode(d):
        return encoder({k: tf.constant(d[k]) for k in encoder.input}, training=False).numpy()

    x, base = encode(feed), encode(background)[: len(feed["aggregates"])]
    alpha = np.random.default_rng(0).uniform(size=(len(x), 1, 1)).astype(np.float32)
    points = (alpha * x + (1 - alpha) * base).astype(np.float32)
    aggregates = (alpha[:, 0] * feed["aggregates"] + (1 - alpha[:, 0]) * background["aggregates"][: len(x)])
    return points, aggregates.astype(np.float32), feed, background, encode


def test_numpy_gradients_equal_tensorflow(served, frame):
    import tensorflow as tf

    from predictions.gradients import core_gradients

    _, keras_scorer, light = served
    points, aggregates, *_ = _points(keras_scorer, frame)
    core = keras_scorer.model.get_layer("core")
    steps_t, aggregates_t = tf.constant(points), tf.constant(aggregates)
    with tf.GradientTape() as tape:
        tape.watch([steps_t, aggregates_t])
        output = core([steps_t, aggregates_t], training=False)
    d_steps, d_aggregates = (g.numpy() for g in tape.gradient(output, [steps_t, aggregates_t]))
    mine, my_steps, my_aggregates = core_gradients(light.network, points, aggregates)
    np.testing.assert_allclose(mine, output.numpy().reshape(-1), atol=1e-6)
    scale = max(np.abs(d_steps).max(), np.abs(d_aggregates).max())
    assert scale > 0
    np.testing.assert_allclose(my_steps, d_steps, atol=1e-5 * scale, rtol=1e-4)
    np.testing.assert_allclose(my_aggregates, d_aggregates, atol=1e-5 * scale, rtol=1e-4)


def test_numpy_expected_gradients_equal_shap_gradient_explainer(served, frame):
    import shap

    from predictions.gradients import expected_gradients

    _, keras_scorer, light = served
    _, _, feed, background, encode = _points(keras_scorer, frame, count=4)
    inputs = [encode(feed), feed["aggregates"]]
    base = [encode(background), background["aggregates"]]
    explainer = shap.GradientExplainer(keras_scorer.model.get_layer("core"), base)
    theirs = explainer.shap_values(inputs, nsamples=30, rseed=7)
    theirs = [np.asarray(v)[..., 0] for v in (theirs[0] if len(theirs) == 1 else theirs)]
    mine = expected_gradients(light.network, inputs, base, nsamples=30, seed=7)
    for a, b in zip(mine, theirs, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-6 + 1e-4 * np.abs(b).max())


def test_numpy_explanations_are_the_served_ones_and_add_up(served, frame):
    from predictions.ml.explain import explain_contacts

    _, keras_scorer, light = served
    reference = keras_scorer.score(frame)
    contacts = reference.contacts[:6]
    mine = explain_contacts(light.scorer, frame, contacts, cutoff=reference.cutoff, top_k=3, nsamples=40)
    theirs = explain_contacts(keras_scorer, frame, contacts, cutoff=reference.cutoff, top_k=3, nsamples=40)
    for e, k, p in zip(mine, theirs, reference.probabilities[:6], strict=True):
        assert e.probability == pytest.approx(p, abs=1e-5)
        # probability units, adding up to the served probability
        assert e.base_value + sum(f.contribution for f in e.all_factors) == pytest.approx(e.probability, abs=1e-6)
        assert e.base_value == pytest.approx(k.base_value, abs=1e-5)
        assert {f.text: round(f.contribution, 4) for f in e.all_factors} == pytest.approx(
            {f.text: round(f.contribution, 4) for f in k.all_factors}, abs=2e-4)
    assert np.max(light.scorer.candidate.last_efficiency_gap) < 0.05


def test_explaining_with_the_numpy_network_imports_no_tensorflow(served, frame, tmp_path):
    """A worker or web process explains a network score without TensorFlow, keras or shap."""
    import pickle
    import subprocess
    import sys
    from pathlib import Path

    arch, keras_scorer, _ = served
    if arch != "lstm":
        pytest.skip("one family is enough for the import check")
    reference = keras_scorer.score(frame)
    (tmp_path / "case.pkl").write_bytes(pickle.dumps((frame, reference.contacts[:3].tolist(), reference.cutoff)))
    code = (
        "import pickle, sys\n"
        "from predictions.ml.explain import explain_contacts\n"
        "from predictions.serving import LightScorer\n"
        f"frame, contacts, cutoff = pickle.load(open({str(tmp_path / 'case.pkl')!r}, 'rb'))\n"
        f"light = LightScorer({str(keras_scorer.artifact_dir)!r})\n"
        "done = explain_contacts(light.scorer, frame, contacts, cutoff=cutoff)\n"
        "assert len(done) == 3 and all(e.factors for e in done)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'tensorflow', 'keras', 'shap'})\n"
        "print(heavy[:5]); sys.exit(1 if heavy else 0)\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{done.stdout} {done.stderr[-2000:]}"


def test_an_unreadable_network_is_an_artifact_error(tmp_path):
    from predictions.ml.errors import ArtifactError
    from predictions.serving import NumpyNetwork

    broken = tmp_path / "model.keras"
    broken.write_bytes(b"no zip")
    with pytest.raises(ArtifactError, match="cannot read"):
        NumpyNetwork(broken)
