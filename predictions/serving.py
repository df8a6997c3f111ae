"""A TensorFlow-free forward pass of the stored sequence networks, for web processes and real time.

`POST /api/v1/predict` answers inline, and web processes must never import TensorFlow; a proxy to a
scoring worker would add a broker round trip (tens of ms) per request. So the network is evaluated
here in numpy from the artifact's own files: `model.keras` is a zip of `config.json` and
`model.weights.h5`, read with h5py. Keras 3 names the weight groups by class (`embedding`,
`embedding_1`, `lstm`, ...) in the order of each sub-model's layer list, which `config.json` gives,
so every weight is found by the layer name the builder gave it (`predictions/ml/models.py`).

The network is the one `build_model` makes (encoder: embeddings x present-mask, joined with the step
numerics; core: masking, two recurrent layers, aggregates, dense relu, sigmoid). Any other layout
raises ArtifactError naming what is unsupported, so nothing is scored by a wrong interpretation; a
test checks the outputs against Keras for LSTM, GRU and SimpleRNN artifacts.
"""

from __future__ import annotations

import io
import json
import re
import threading
import zipfile
from pathlib import Path

import numpy as np

from predictions.ml import artifacts
from predictions.ml.data import EventFrame
from predictions.ml.errors import ArtifactError
from predictions.ml.labels import Samples

_EMBEDDINGS = ("event_name", "stage", "campaign", "channel")
_RECURRENT = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn"}


def _snake(name: str) -> str:
    """Keras' own class-name-to-group-name rule (keras.src.utils.naming.to_snake_case)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # overflow-free and exact: sigmoid(x) = (tanh(x/2) + 1) / 2


_CONTROLLER = None


def _blas():
    """The process's threadpool controller (built once: it inspects the loaded libraries)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


class _Weights:
    """Weights of one Functional sub-model, by the builder's layer names."""

    def __init__(self, h5, group: str, layers: list[dict]) -> None:
        self.by_name: dict[str, list[np.ndarray]] = {}
        self.config: dict[str, dict] = {}
        self.classes: dict[str, str] = {}
        seen: dict[str, int] = {}
        for layer in layers:
            base = _snake(layer["class_name"])
            count = seen.get(base, 0)
            seen[base] = count + 1
            key = base if count == 0 else f"{base}_{count}"
            self.config[layer["name"]] = layer.get("config", {})
            self.classes[layer["name"]] = layer["class_name"]
            node = h5.get(f"{group}/layers/{key}")
            if node is None:
                continue
            vars_group = node.get("cell/vars") if "cell" in node else node.get("vars")
            if vars_group is None:
                continue
            self.by_name[layer["name"]] = [np.asarray(vars_group[str(i)]) for i in range(len(vars_group))]

    def get(self, name: str) -> list[np.ndarray]:
        if name not in self.by_name:
            raise ArtifactError(f"the network has no weights for layer {name!r}: unsupported by the numpy scorer")
        return self.by_name[name]


class NumpyNetwork:
    """The classifier of a `model.keras` file as numpy arrays; `__call__(inputs)` -> (S,) outputs."""

    def __init__(self, model_file: Path) -> None:
        import h5py

        try:
            with zipfile.ZipFile(model_file) as archive:
                config = json.loads(archive.read("config.json"))
                weights = archive.read("model.weights.h5")
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
            raise ArtifactError(f"cannot read {model_file}: {error}") from error
        subs = {layer["name"]: layer for layer in config["config"]["layers"] if layer["class_name"] == "Functional"}
        if set(subs) != {"encoder", "core"}:
            raise ArtifactError(f"unsupported network layout (sub-models {sorted(subs)}): expected encoder and core")
        order = [name for name in (layer["name"] for layer in config["config"]["layers"]) if name in subs]
        groups = {name: "layers/functional" + ("" if i == 0 else f"_{i}") for i, name in enumerate(order)}
        with h5py.File(io.BytesIO(weights), "r") as h5:
            encoder = _Weights(h5, groups["encoder"], subs["encoder"]["config"]["layers"])
            core = _Weights(h5, groups["core"], subs["core"]["config"]["layers"])
        self.embeddings = [encoder.get(f"{name}_embedding")[0].astype(np.float32) for name in _EMBEDDINGS]
        recurrent = [name for name, cls in core.classes.items() if cls in _RECURRENT]
        if len(recurrent) != 2:
            raise ArtifactError(f"unsupported network: {len(recurrent)} recurrent layers, expected 2")
        self.arch = _RECURRENT[core.classes[recurrent[0]]]
        self.layers = []
        for name in recurrent:
            cfg = core.config[name]
            if cfg.get("activation", "tanh") != "tanh" or cfg.get("recurrent_activation", "sigmoid") != "sigmoid":
                raise ArtifactError(f"unsupported activations in {name}")
            if self.arch == "gru" and not cfg.get("reset_after", True):
                raise ArtifactError(f"unsupported GRU {name}: reset_after=False")
            self.layers.append([w.astype(np.float32) for w in core.get(name)])
        # the forward pass's weights: the sigmoid gates' columns halved, since sigmoid(z) is
        # (tanh(z / 2) + 1) / 2, so one tanh over all gates serves sigmoids and tanh alike (a step is
        # a dozen numpy calls on a few rows, and their count is what a single contact costs)
        self.fast_layers = [self._halved(w) for w in self.layers]
        self.dense = [w.astype(np.float32) for w in core.get("dense")]
        self.output = [w.astype(np.float32) for w in core.get("probability")]

    def _halved(self, weights: list[np.ndarray]) -> list[np.ndarray]:
        kernel, recurrent, bias = weights
        units = recurrent.shape[0]
        scale = np.ones(kernel.shape[1], np.float32)
        if self.arch == "lstm":  # gates i, f, g, o: g is a tanh
            scale[:2 * units] = scale[3 * units:] = 0.5
        elif self.arch == "gru":  # gates z, r, h: h is a tanh
            scale[:2 * units] = 0.5
        return [kernel * scale, recurrent * scale, bias * scale]

    def steps(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The encoder: (S, N, width) float step vectors, zero on padded steps."""
        numeric = inputs["numeric"].astype(np.float32)
        embedded = np.concatenate([table[inputs[name]] for table, name in zip(self.embeddings, _EMBEDDINGS,
                                                                                 strict=True)], axis=-1)
        embedded *= numeric[..., :1]
        return np.concatenate([embedded, numeric], axis=-1)

    def _recurrent(self, x: np.ndarray, mask: np.ndarray, weights: list[np.ndarray],
                   tape: list | None = None) -> np.ndarray:
        """All step outputs of one recurrent layer; a masked step carries the state over (Keras).
        `tape`, when given, receives what the backward pass needs (predictions/gradients.py)."""
        kernel, recurrent, bias = weights  # halved sigmoid columns (fast_layers)
        n, steps, _ = x.shape
        units = recurrent.shape[0]
        h = np.zeros((n, units), np.float32)
        c = np.zeros((n, units), np.float32)
        gru = self.arch == "gru"
        bias_in, bias_rec = ((bias[0], bias[1]) if bias.ndim == 2 else (bias, np.zeros_like(bias))) if gru else (bias, 0)
        projected = x @ kernel + bias_in  # every step's input projection (and bias) in one matrix product
        out = np.empty((n, steps, units), np.float32)
        active = mask.any(axis=0)
        first = int(np.argmax(active)) if active.any() else steps  # left padding: skip empty columns
        # from `dense` on every row is a real step, so no state needs carrying (one contact: from `first`)
        full = mask.all(axis=0)
        dense = steps - int(np.argmin(full[::-1])) if not full.all() else 0
        out[:, :first] = 0.0
        u1, u2, u3 = units, 2 * units, 3 * units
        for t in range(first, steps):
            keep = mask[:, t : t + 1] if t < dense else None
            if self.arch == "lstm":
                a = np.tanh(projected[:, t] + h @ recurrent)
                s = a * 0.5 + 0.5  # the sigmoid gates (i, f, o columns)
                i, f, g, o = s[:, :u1], s[:, u1:u2], a[:, u2:u3], s[:, u3:]
                c_new = f * c + i * g
                h_new = o * np.tanh(c_new)
                if tape is not None:
                    tape.append((c, i, f, g, o, c_new))
                c = c_new if keep is None else np.where(keep, c_new, c)
            elif gru:
                a = projected[:, t]
                r_all = h @ recurrent + bias_rec
                gates = np.tanh(a[:, :u2] + r_all[:, :u2]) * 0.5 + 0.5
                update, reset = gates[:, :u1], gates[:, u1:]
                rh = r_all[:, u2:]  # the h columns are not halved (a tanh)
                candidate = np.tanh(a[:, u2:] + reset * rh)
                h_new = candidate + update * (h - candidate)
                if tape is not None:
                    tape.append((h, update, reset, candidate, rh))
            else:
                h_new = np.tanh(projected[:, t] + h @ recurrent)
                if tape is not None:
                    tape.append((h_new,))
            h = h_new if keep is None else np.where(keep, h_new, h)
            out[:, t] = h
        return out

    def core(self, steps: np.ndarray, aggregates: np.ndarray, tape: dict | None = None) -> np.ndarray:
        """[step vectors, aggregates] -> (S,) network outputs (`tape`: see _recurrent)."""
        mask = np.any(steps != 0, axis=-1)
        tapes = (None, None) if tape is None else ([], [])
        x = self._recurrent(steps, mask, self.fast_layers[0], tapes[0])
        last = self._recurrent(x, mask, self.fast_layers[1], tapes[1])[:, -1]
        hidden = np.concatenate([last, aggregates.astype(np.float32)], axis=1) @ self.dense[0] + self.dense[1]
        logits = np.maximum(hidden, 0.0) @ self.output[0] + self.output[1]
        output = _sigmoid(logits.astype(np.float64)).reshape(-1)
        if tape is not None:
            tape.update(mask=mask, recurrent=tapes, hidden=hidden, output=output)
        return output

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        # One BLAS thread: the matrices are small (units x 4 units), so threads only contend, and
        # web processes run several requests at once (3x faster measured under load).
        with _blas().limit(limits=1, user_api="blas"):
            return self.core(self.steps(inputs), inputs["aggregates"])


class NumpyNetworkCandidate:
    """A stored network candidate (candidates/<arch>/model.keras) scored and explained by the numpy
    forward pass: the same raw score as `predictions.ml.networks.Network.score` (the logit of its
    output), and the same expected-gradient explanation as its SHAP GradientExplainer (same seed,
    same values: predictions/gradients.py), without TensorFlow."""

    def __init__(self, folder: Path) -> None:
        self.network = NumpyNetwork(Path(folder) / "model.keras")
        self._background: tuple | None = None  # (background Inputs, its encoded steps, mean output)

    def score(self, inputs) -> np.ndarray:
        if len(inputs) == 0:
            return np.zeros(0)
        output = self.network(inputs.batch.inputs())
        return np.log(np.clip(output, 1e-7, 1 - 1e-7)) - np.log1p(-np.clip(output, 1e-7, 1 - 1e-7))

    def explain(self, inputs, context):
        from predictions.gradients import expected_gradients
        from predictions.ml.network_factors import network_attribution

        with _blas().limit(limits=1, user_api="blas"):
            if self._background is None or self._background[0] is not context.background:
                feed = context.background.batch.inputs()
                steps = self.network.steps(feed)  # the background is the artifact's: encoded once
                self._background = (context.background, [steps, feed["aggregates"]],
                                    float(np.mean(self.network.core(steps, feed["aggregates"]))))
            _, background, p0 = self._background
            feed = inputs.batch.inputs()
            steps = self.network.steps(feed)
            step_values, aggregate_values = expected_gradients(
                self.network, [steps, feed["aggregates"]], background, nsamples=context.nsamples, seed=context.seed)
            p = self.network.core(steps, feed["aggregates"])
        attribution, self.last_efficiency_gap = network_attribution(
            inputs, context, step_values.sum(axis=-1), aggregate_values, p, p0)
        return attribution


class LightScorer:
    """A stored model for scoring in any process without TensorFlow: the tournament's Scorer (every
    family: classical candidates never import TensorFlow) with networks run by the numpy forward
    pass. Same outputs as `predictions.ml.scorer.Scorer` (tested)."""

    def __init__(self, artifact_dir: str | Path) -> None:
        from predictions.ml.scorer import Scorer

        self.scorer = Scorer(artifact_dir, network_loader=NumpyNetworkCandidate)
        self.artifact_dir = self.scorer.artifact_dir
        self.config = self.scorer.config
        self.threshold = self.scorer.threshold
        self.preprocessor = self.scorer.preprocessor
        self.calibrator = self.scorer.calibrator
        candidate = self.scorer.candidate
        self.network = getattr(candidate, "network", None)

    @property
    def arch(self) -> str:
        return self.scorer.arch

    def score_frame(self, frame: EventFrame, contacts, cutoff: int) -> tuple[np.ndarray, np.ndarray, object]:
        """(probabilities, raw scores, inputs) of `contacts` as of `cutoff`."""
        ids = np.asarray(contacts, np.int64)
        samples = Samples(ids, np.full(len(ids), int(cutoff), np.int64), np.zeros(len(ids), np.int8))
        inputs = self.scorer.inputs(frame, samples)
        raw = self.scorer.raw_scores(inputs)
        return self.calibrator(raw), raw, inputs


_LIGHT: dict[str, tuple[tuple, LightScorer]] = {}
_LIGHT_LOCK = threading.Lock()


def light_scorer_load(artifact_dir: str | Path) -> LightScorer:
    """The LightScorer of an artifact, cached per process (keyed like `scoring.scorer_load`)."""
    path = Path(artifact_dir)
    try:
        info = (path / artifacts.MANIFEST).stat()
        stamp = (info.st_ino, info.st_ctime_ns, info.st_mtime_ns)
    except OSError:
        stamp = ()
    key = str(path.resolve())
    with _LIGHT_LOCK:
        hit = _LIGHT.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        scorer = LightScorer(path)
        if len(_LIGHT) >= 8:
            _LIGHT.pop(next(iter(_LIGHT)))
        _LIGHT[key] = (stamp, scorer)
        return scorer


def sequence_frame(*, workspace_id: int, events, as_of=None, resolver=None) -> tuple[EventFrame, int]:
    """One contact's validated events (ValidEvent, from a request) as an EventFrame of contact 0, staged
    like stored events (repeat purchases as loyalty, outbound dropped); returns (frame, cut-off).
    `resolver`: the workspace's StageResolver when the caller has it (else it is read)."""
    from funnel_site.events.stages import LOYALTY, PURCHASE, StageResolver, is_outbound

    resolver = resolver or StageResolver.for_workspace(workspace_id)
    own = sorted((e for e in events if not is_outbound(e.name)), key=lambda e: e.timestamp)
    newest = int(own[-1].timestamp.timestamp()) + 1 if own else 0
    cutoff = int(as_of.timestamp()) if as_of is not None else newest
    own = [e for e in own if int(e.timestamp.timestamp()) < cutoff]
    stages, bought = [], False
    for e in own:
        stage = resolver.stage_of(e.name)
        if stage == PURCHASE:
            stage, bought = (LOYALTY if bought else PURCHASE), True
        stages.append(stage)
    frame = EventFrame.from_arrays(
        [0] * len(own), [int(e.timestamp.timestamp()) for e in own], [e.name for e in own], stages,
        [resolver.is_purchase(e.name) for e in own], [e.campaign for e in own], [e.channel for e in own],
        [np.nan if e.value is None else e.value for e in own],
    )
    return frame, cutoff
