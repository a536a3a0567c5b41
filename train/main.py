"""Trains one model as a config file says.

python -m train.main --config configs/default.py --workdir /tmp/run
python -m train.main --config configs/default.py --workdir /tmp/run --config.num_train_steps=50
"""

import json

from absl import app, flags, logging
from ml_collections import config_flags

from train import loop

_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, logs and the summary go.")
_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "A configs/*.py file.")
flags.mark_flag_as_required("workdir")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax and tfds log much at INFO
  summary = loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  print(json.dumps({k: summary[k] for k in ("status", "step", "eval", "tokens_per_second")}))
  if summary["status"] == "interrupted":
    print(f"Interrupted at step {summary['step']}; rerun the same command to resume.")


if __name__ == "__main__":
  app.run(main)
