"""Pure ML for purchase/churn prediction: no Django here, and the only package importing TensorFlow.

Importing this package (and ``config``, ``data``, ``labels``, ``errors``, ``artifacts``) does not
import TensorFlow, so web processes may validate configs. The heavy entry points live in:

- ``predictions.ml.trainer.train_model(frame, config, *, artifact_dir, progress, should_cancel)``
- ``predictions.ml.scorer.Scorer(artifact_dir).score(frame, cutoff=None, contacts=None)``
- ``predictions.ml.explain.explain_contacts(scorer, frame, contacts, cutoff=None, top_k=3)``
- ``predictions.ml.stage_tagger.suggest_stages(...)`` (CRF stage suggestions for unmapped names)

The tournament's candidates live in ``candidates`` (classical), ``networks``, ``hmm``, ``bgnbd`` and
``stack``; ``tournament`` runs the backtest and the selection rule.
"""

from .config import TrainConfig, parse_duration
from .data import EventFrame
from .errors import ArtifactError, ConfigError, MLError, NotEnoughData, TrainingCancelled

__all__ = [
    "ArtifactError",
    "ConfigError",
    "EventFrame",
    "MLError",
    "NotEnoughData",
    "TrainConfig",
    "TrainingCancelled",
    "parse_duration",
]
