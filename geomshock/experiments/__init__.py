"""The paper's experiments: compute -> data -> plots -> reports."""

from ._registry import (
    Experiment as Experiment,
    available_experiments as available_experiments,
    experiment_names as experiment_names,
    get_experiment as get_experiment,
)
from ._runner import run_experiments as run_experiments
