"""Writes of the experiments app (see each module)."""

from experiments.services.exposure import exposures_record, journey_split
from experiments.services.lifecycle import (
    experiment_conclude,
    experiment_create,
    experiment_launch,
    experiment_stop,
)

__all__ = [
    "experiment_conclude",
    "experiment_create",
    "experiment_launch",
    "experiment_stop",
    "exposures_record",
    "journey_split",
]
