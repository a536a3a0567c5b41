"""The main job: the paper's pipeline in miniature on the offline data, as a paired comparison.

For every seed and every model of --models (default BERT-tiny and MöbiusBERT-tiny): pretrain on
WikiText-2, fine-tune on the polarity task, fine-tune from scratch with the same budget, and
analyse the fine-tuned model (`train.studies.paired`). Then one report (`train.studies.report`):
a row per model and seed, mean ± std per model, the baselines on the same splits, and the
paired differences with 95 % t-intervals in words; written to WORKDIR/results.md and
results.json. The configs are `configs/default.py`'s (docs/training.md says how long it takes).

  python -m train.reproduce                     # one seed, both models
  python -m train.reproduce --seeds 5 --models roformer-tiny,mobius_roformer-tiny
  python -m train.reproduce --models bert-tiny,mobius_bert-tiny+mobius_key_value=elementwise
  python -m train.reproduce --seeds 3 --pretrain_steps 20 --finetune_steps 20   # a smoke run
  python -m train.reproduce --pretrain_config.optimizer.learning_rate=1e-3
"""

import pathlib
import time

import jax
from absl import flags
from ml_collections import config_flags

from train import cli, files
from train.data import tasks
from train.studies import baselines, paired, report

_PRETRAIN = config_flags.DEFINE_config_file(
  "pretrain_config", "configs/default.py", "The pretraining config of every model."
)
_FINETUNE = config_flags.DEFINE_config_file(
  "finetune_config", "configs/default.py:finetune", "The fine-tuning config of every model."
)
_WORKDIR = flags.DEFINE_string("workdir", "runs/reproduce", "Where every run's files go.")
_SEEDS = flags.DEFINE_integer("seeds", 1, "How many seeds (0 … n − 1) to run.")
_MODELS = flags.DEFINE_list(
  "models", ["bert-tiny", "mobius_bert-tiny"], "Presets, each optionally +field=value."
)
_TASK = flags.DEFINE_string("task", "polarity", "The fine-tuning task (train.data.tasks.TASKS).")
_PRETRAIN_STEPS = flags.DEFINE_integer("pretrain_steps", None, "Override the config's steps.")
_FINETUNE_STEPS = flags.DEFINE_integer("finetune_steps", None, "Override the config's steps.")
_DIAGNOSTICS = flags.DEFINE_bool(
  "diagnostics", True, "Log gradient norms per group, determinants and pole distances."
)


def study() -> paired.Study:
  """The flags' configs: the task, the step counts and the diagnostics set in them."""
  pretrain, finetune = _PRETRAIN.value, _FINETUNE.value
  finetune.task = _TASK.value
  for config, steps in ((pretrain, _PRETRAIN_STEPS.value), (finetune, _FINETUNE_STEPS.value)):
    config.diagnostics = _DIAGNOSTICS.value
    if steps:
      config.num_train_steps = steps
  return paired.Study(pretrain, finetune)


def main():
  # Every name is checked before any run starts.
  task = tasks.get_task(_TASK.value)
  models = [paired.Model.parse(name) for name in _MODELS.value]
  root = pathlib.Path(_WORKDIR.value)
  started = time.perf_counter()
  rows = paired.run_study(study(), models, _SEEDS.value, root)
  if rows is None or jax.process_index() != 0:
    return
  reference = None
  if not task.is_regression and task.test_split:
    reference = baselines.classification_baselines(task)
  text = report.report(rows, task, reference)
  files.write_json(root / "results.json", {"rows": rows, "baselines": reference})
  files.write_text(root / "results.md", text + "\n")
  minutes = (time.perf_counter() - started) / 60
  print(f"\n{_SEEDS.value} seed(s), {task.name}; total {minutes:.1f} min\n\n{text}")


if __name__ == "__main__":
  cli.run(main)
