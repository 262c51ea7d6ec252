"""One worker of the two-worker test: train the experiment under TF_CONFIG, save the final weights.

Run as: python tests/multiworker_worker.py EXPERIMENT.yaml WEIGHTS.npz  (TF_CONFIG in the environment)
"""

import sys

import numpy as np

from flexseg.commands.train import train
from flexseg.config import load_experiment

if __name__ == "__main__":
    result = train(load_experiment(sys.argv[1]))
    np.savez(sys.argv[2], *[np.asarray(w) for w in result.model.get_weights()])
    print(f"worker done: {result.epochs_run} epoch(s), best epoch {result.best_epoch}")
