"""Explanations of the numpy network without TensorFlow: SHAP's GradientExplainer estimator, in numpy.

The served sequence networks are explained with expected gradients over the embedded inputs (the
issue's "SHAP GradientExplainer over the embedded inputs"). Through shap that needs TensorFlow, and
on these hosts one explanation cost seconds (a graph traced per call) plus TensorFlow's import in
the worker. Here the same estimator runs on the numpy forward pass (`predictions.serving`):

- `core_gradients`: the exact gradient of the network's output with respect to its float inputs
  (step vectors and aggregates), by back-propagation through time of the recorded forward pass
  (LSTM, GRU with reset_after, SimpleRNN; masked steps carry the state, so they pass the gradient
  on unchanged; the mask itself is piecewise constant, as in Keras). Tested against TensorFlow's.
- `expected_gradients`: for each sample, `nsamples` points between a background row and the sample,
  drawn exactly as `shap.GradientExplainer.shap_values(..., rseed=seed)` draws them (a legacy
  RandomState: background row, then the interpolation point, per sample in order), gradient times
  the difference, averaged. With the same seed it gives shap's values (tested), in milliseconds.
"""

from __future__ import annotations

import numpy as np

_CHUNK = 4096  # rows of interpolated points per forward/backward pass (bounded memory)


def _layer_backward(arch: str, weights: list[np.ndarray], tape: list, mask: np.ndarray,
                    d_out: np.ndarray) -> np.ndarray:
    """Gradient with respect to a recurrent layer's inputs, given the gradient at each step's output."""
    kernel, recurrent, _ = weights
    n, steps, units = d_out.shape
    first = steps - len(tape)
    gates = kernel.shape[1]
    d_projected = np.zeros((n, steps, gates), np.float32)
    dh = np.zeros((n, units), np.float32)
    dc = np.zeros((n, units), np.float32)
    recurrent_t = recurrent.T
    for t in range(steps - 1, first - 1, -1):
        dh = dh + d_out[:, t]
        keep = mask[:, t : t + 1]
        dh_new, dh_carry = np.where(keep, dh, 0.0), np.where(keep, 0.0, dh)
        record = tape[t - first]
        if arch == "lstm":
            c_prev, i, f, g, o, c_new = record
            tanh_c = np.tanh(c_new)
            dc_new = np.where(keep, dc, 0.0) + dh_new * o * (1 - tanh_c * tanh_c)
            dz = np.concatenate([dc_new * g * i * (1 - i), dc_new * c_prev * f * (1 - f),
                                 dc_new * i * (1 - g * g), dh_new * tanh_c * o * (1 - o)], axis=1)
            dc = dc_new * f + np.where(keep, 0.0, dc)
            dh = dz @ recurrent_t + dh_carry
        elif arch == "gru":
            h_prev, update, reset, candidate, rh = record
            d_candidate = dh_new * (1 - update) * (1 - candidate * candidate)
            d_update = dh_new * (h_prev - candidate) * update * (1 - update)
            d_reset = d_candidate * rh * reset * (1 - reset)
            dz = np.concatenate([d_update, d_reset, d_candidate], axis=1)
            d_rec = np.concatenate([d_update, d_reset, d_candidate * reset], axis=1)
            dh = dh_new * update + d_rec @ recurrent_t + dh_carry
        else:
            (h_new,) = record
            dz = dh_new * (1 - h_new * h_new)
            dh = dz @ recurrent_t + dh_carry
        d_projected[:, t] = dz
    return d_projected @ kernel.T


def core_gradients(network, steps: np.ndarray, aggregates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(outputs (S,), d output / d steps (S, N, width), d output / d aggregates (S, A)) of a NumpyNetwork."""
    tape: dict = {}
    output = network.core(steps, aggregates, tape)
    units = network.layers[1][1].shape[0]
    d_logit = (output * (1 - output)).astype(np.float32)[:, None]  # sigmoid'
    d_hidden = (d_logit @ network.output[0].T) * (tape["hidden"] > 0)  # relu'
    d_joined = d_hidden @ network.dense[0].T
    d_last = np.zeros((len(steps), steps.shape[1], units), np.float32)
    d_last[:, -1] = d_joined[:, :units]
    first_tape, second_tape = tape["recurrent"]
    d_x = _layer_backward(network.arch, network.layers[1], second_tape, tape["mask"], d_last)
    d_steps = _layer_backward(network.arch, network.layers[0], first_tape, tape["mask"], d_x)
    return output, d_steps, d_joined[:, units:]


def expected_gradients(network, inputs: list[np.ndarray], background: list[np.ndarray], *, nsamples: int,
                       seed: int) -> list[np.ndarray]:
    """shap.GradientExplainer's values of `network.core` at `inputs` ([steps, aggregates]) against
    `background` (same layout): one array per input, the shape of that input, output units."""
    rng = np.random.RandomState(seed)  # noqa: NPY002 - shap's own legacy stream, drawn in its order
    n, rows = len(inputs[0]), len(background[0])
    picks = np.empty((n, nsamples), np.int64)
    alphas = np.empty((n, nsamples), np.float64)
    for j in range(n):
        for k in range(nsamples):
            picks[j, k] = rng.choice(rows)
            alphas[j, k] = rng.uniform()
    values = [np.zeros(x.shape, np.float64) for x in inputs]
    per_chunk = max(1, _CHUNK // nsamples)
    for start in range(0, n, per_chunk):
        part = slice(start, min(start + per_chunk, n))
        count = part.stop - part.start
        pick, alpha = picks[part].reshape(-1), alphas[part].reshape(-1)
        deltas, points = [], []
        for x, base in zip(inputs, background, strict=True):
            x = np.repeat(x[part], nsamples, axis=0)
            shape = (-1,) + (1,) * (x.ndim - 1)
            a = alpha.reshape(shape)
            # float32 like shap's sample arrays, so the points (and the masks they imply) are the same
            points.append((a * x + (1 - a) * base[pick]).astype(np.float32))
            deltas.append((x - base[pick]).astype(np.float32))
        _, *grads = core_gradients(network, points[0], points[1])
        for value, grad, delta in zip(values, grads, deltas, strict=True):
            value[part] = (grad * delta).reshape(count, nsamples, *delta.shape[1:]).mean(axis=1)
    return values
