"""Trains one model as a config file says (`train.core.loop.train_and_evaluate`).

python -m train.main --config configs/default.py --workdir /tmp/run
python -m train.main --config configs/default.py --workdir /tmp/run --config.num_train_steps=50

Several processes (a TPU pod's hosts, a GPU cluster's nodes, or processes on one machine) run
the same command, each with its --process_id; JAX detects pods, SLURM and Open MPI itself:

XLA_FLAGS=--xla_force_host_platform_device_count=4 python -m train.main \
  --config configs/default.py --workdir W --coordinator_address=localhost:12345 \
  --num_processes=2 --process_id=0      # and --process_id=1 in a second shell
"""

import json

import jax
from absl import flags
from ml_collections import config_flags

from train import cli
from train.core import loop

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "A configs/*.py file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, logs and the summary go.")
flags.mark_flag_as_required("workdir")


def main():
  summary = loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  if jax.process_index() == 0:
    print(json.dumps({k: summary[k] for k in ("status", "step", "eval", "tokens_per_second")}))
    if summary["status"] == "interrupted":
      print(f"Interrupted at step {summary['step']}; rerun the same command to resume.")


if __name__ == "__main__":
  cli.run(main)
