"""The paper's pipeline in miniature, on the offline data: the README's main job.

Pretrains a tiny BERT and a tiny MöbiusBERT with the same budget (steps, batch, data) on
WikiText-2, fine-tunes both on the Rotten Tomatoes polarity task, evaluates them, and prints one
table. Runs resume from their checkpoints, so a second call with the same flags only prints.

  python -m train.reproduce                    # the default, a few minutes on a 2-core CPU
  python -m train.reproduce --seeds 3          # mean ± std over three seeds
  python -m train.reproduce --pretrain_steps 30 --finetune_steps 30   # a quick smoke run
"""

from __future__ import annotations

import pathlib
import statistics
import time

import jax
import numpy as np
from absl import app, flags, logging

from configs import default
from train import files, loop, partitioning, tasks
from train.datasets import data_source

_WORKDIR = flags.DEFINE_string("workdir", "runs/reproduce", "Where every run's files go.")
_SEEDS = flags.DEFINE_integer("seeds", 1, "How many seeds to run (reports mean ± std).")
_MODELS = flags.DEFINE_list("models", ["bert-tiny", "mobius_bert-tiny"], "Model presets.")
_TASK = flags.DEFINE_string("task", "polarity", "The fine-tuning task (train.tasks.TASKS).")
_PRETRAIN_STEPS = flags.DEFINE_integer("pretrain_steps", None, "Override the config's steps.")
_FINETUNE_STEPS = flags.DEFINE_integer("finetune_steps", None, "Override the config's steps.")

COLUMNS = (
  ("parameters", "params"),
  ("mlm_accuracy", "MLM acc (val)"),
  ("validation", "val {metric}"),
  ("test", "test {metric}"),
  ("tokens_per_second", "pretrain tokens/s"),
  ("wall_time_seconds", "wall time (s)"),
)


def run_one(model: str, seed: int, workdir: pathlib.Path) -> dict:
  """Pretrains `model`, fine-tunes it, and returns the row of the table."""
  pretrain = default.get_config()
  pretrain.model, pretrain.seed = model, seed
  finetune = default.finetune_config()
  finetune.model, finetune.seed, finetune.task = model, seed, _TASK.value
  finetune.init_from = str(workdir / "pretrain")
  if _PRETRAIN_STEPS.value:
    pretrain.num_train_steps = _PRETRAIN_STEPS.value
  if _FINETUNE_STEPS.value:
    finetune.num_train_steps = _FINETUNE_STEPS.value
  first = loop.train_and_evaluate(pretrain, workdir / "pretrain")
  second = loop.train_and_evaluate(finetune, workdir / "finetune")
  metric = tasks.get_task(_TASK.value).metrics[0]
  return {
    "parameters": first["parameters"],
    "mlm_accuracy": first["eval"]["validation"]["accuracy"],
    "validation": second["eval"]["validation"][metric],
    "test": second["eval"].get("test", {}).get(metric, float("nan")),
    "tokens_per_second": first["tokens_per_second"],
    "wall_time_seconds": first["wall_time_seconds"] + second["wall_time_seconds"],
  }


def majority_baseline(task: tasks.Task) -> float:
  """Test accuracy of always predicting the training split's most frequent label."""
  labels = {}
  for split in (task.train_split, task.test_split):
    source = data_source(task.dataset, split, None, task.offline)
    labels[split] = np.array([int(source[i][task.label_key]) for i in range(len(source))])
  majority = np.bincount(labels[task.train_split]).argmax()
  return float(np.mean(labels[task.test_split] == majority))


def format_table(rows: dict[str, list[dict]], task: tasks.Task) -> str:
  metric = task.metrics[0]
  header = ["model"] + [title.format(metric=metric) for _, title in COLUMNS]
  lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * len(COLUMNS) + "|"]
  for model, results in rows.items():
    cells = [model]
    for key, _ in COLUMNS:
      values = [r[key] for r in results if r[key] is not None]
      cells.append(format_cell(key, values))
    lines.append("| " + " | ".join(cells) + " |")
  if not task.is_regression and task.test_split:
    baseline = majority_baseline(task)
    lines.append(f"| majority class | | | | {baseline:.3f} | | |")
  return "\n".join(lines)


def format_cell(key: str, values: list[float]) -> str:
  """One table cell: the parameter count, or the mean (± std over seeds) of a measure."""
  if not values:
    return "n/a"
  if key == "parameters":
    return f"{values[0] / 1e6:.2f}M"
  digits = 0 if key in ("tokens_per_second", "wall_time_seconds") else 3
  mean = statistics.fmean(values)
  if len(values) == 1:
    return f"{mean:.{digits}f}"
  return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax and tfds log much at INFO
  partitioning.join_processes()  # on a pod or cluster JAX detects; else one process
  task = tasks.get_task(_TASK.value)
  root = pathlib.Path(_WORKDIR.value)
  started = time.perf_counter()
  rows = {model: [] for model in _MODELS.value}
  for seed in range(_SEEDS.value):
    for model in _MODELS.value:
      rows[model].append(run_one(model, seed, root / f"seed{seed}" / model))
  if jax.process_index() == 0:
    table = format_table(rows, task)
    files.write_json(root / "results.json", rows)
    print(f"\n{_SEEDS.value} seed(s), {task.name}; total {time.perf_counter() - started:.0f} s\n")
    print(table)


if __name__ == "__main__":
  app.run(main)
