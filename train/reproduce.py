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

With --init_from (a pretrained checkpoint by name, or hf:DIR) there is no pretraining: every
seed fine-tunes the checkpoint as it is and its upcycled Möbius variants with
--checkpoint_config, paired by seed (`train.studies.upcycling`; --models names its variants,
by default the checkpoint, the upcycled model and its two controls).

  python -m train.reproduce --init_from minilm --seeds 5
  python -m train.reproduce --init_from minilm --task trec --models checkpoint,upcycled
"""

import pathlib
import time

import jax
from absl import flags
from ml_collections import config_flags

from train import cli, files
from train.data import tasks
from train.studies import baselines, paired, report, upcycling

_PRETRAIN = config_flags.DEFINE_config_file(
  "pretrain_config", "configs/default.py", "The pretraining config of every model."
)
_FINETUNE = config_flags.DEFINE_config_file(
  "finetune_config", "configs/default.py:finetune", "The fine-tuning config of every model."
)
_CHECKPOINT = config_flags.DEFINE_config_file(
  "checkpoint_config",
  "configs/default.py:checkpoint",
  "With --init_from: the fine-tuning config of the checkpoint and its variants.",
)
_INIT_FROM = flags.DEFINE_string(
  "init_from", None, "A pretrained checkpoint (e.g. minilm) or hf:DIR: the upcycling study."
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


def configured(config, steps, *, task=None):
  """`config` with the flags' diagnostics, step count (`steps`, where given) and `task`."""
  config.diagnostics = _DIAGNOSTICS.value
  config.task = task or config.task
  if steps:
    config.num_train_steps = steps
  return config


def pretraining_study(task: tasks.Task, root: pathlib.Path):
  """(rows, report function) of the paired pretraining study (`train.studies.paired`)."""
  models = [paired.Model.parse(name) for name in _MODELS.value]  # checked before any run
  finetune = configured(_FINETUNE.value, _FINETUNE_STEPS.value, task=task.name)
  pretrain = configured(_PRETRAIN.value, _PRETRAIN_STEPS.value)
  rows = paired.run_study(paired.Study(pretrain, finetune), models, _SEEDS.value, root)
  return rows, report.report


def upcycling_study(task: tasks.Task, root: pathlib.Path):
  """(rows, report function) of the checkpoint's upcycling study (`train.studies.upcycling`)."""
  names = _MODELS.value if flags.FLAGS["models"].present else list(upcycling.STUDY)
  variants = [upcycling.Variant.parse(name) for name in names]  # checked before any run
  finetune = configured(_CHECKPOINT.value, _FINETUNE_STEPS.value, task=task.name)
  rows = upcycling.run_study(finetune, _INIT_FROM.value, variants, _SEEDS.value, root)
  return rows, upcycling.study_report


def main():
  task = tasks.get_task(_TASK.value)
  root = pathlib.Path(_WORKDIR.value)
  started = time.perf_counter()
  rows, report_of = (upcycling_study if _INIT_FROM.value else pretraining_study)(task, root)
  if rows is None or jax.process_index() != 0:
    return
  reference = None
  if not task.is_regression and task.test_split:
    reference = baselines.classification_baselines(task)
  text = report_of(rows, task, reference)
  files.write_json(root / "results.json", {"rows": rows, "baselines": reference})
  files.write_text(root / "results.md", text + "\n")
  minutes = (time.perf_counter() - started) / 60
  print(f"\n{_SEEDS.value} seed(s), {task.name}; total {minutes:.1f} min\n\n{text}")


if __name__ == "__main__":
  cli.run(main)
