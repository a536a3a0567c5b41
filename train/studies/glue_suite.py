"""The GLUE suite for one pretrained model, as MosaicBERT ran it, and its GLUE average.

`run_suite(suite, init_from, workdir)` runs every task of the suite config (`configs/glue.py:
suite`) with each of its seeds, in WORKDIR/TASK/seedSEED: MNLI first, because RTE, MRPC and
STS-B start from its fine-tuned model (its first seed's run), as in MosaicBERT's `glue.py`.
Finished runs are skipped and an interrupted one resumes, so running it again finishes the
suite. Then one table, WORKDIR/glue.md and glue.json: each task's metrics (mean ± std over
seeds), its score and the average, by MosaicBERT's rules (`task_score`, `glue_average`).

The scores are on GLUE's dev (validation) splits: TFDS does not hold GLUE's test labels, and the
GLUE leaderboard's test-set average (which also counts WNLI and uses other metrics) is not
comparable with it.
"""

from __future__ import annotations

import pathlib
import statistics

import jax
import ml_collections

from train import files, markdown
from train.core import checks, experiment, loop

# The metrics a task's score averages, as (split, metric): MosaicBERT's `glue.py` takes the mean
# of every metric a task's evaluator keeps (`finetuning_jobs.py`): both MNLI dev sets' accuracy,
# QQP's and MRPC's accuracy and F1, STS-B's Spearman, CoLA's Matthews correlation.
SCORE_METRICS = {
  "mnli": (("validation_matched", "accuracy"), ("validation_mismatched", "accuracy")),
  "qqp": (("validation", "accuracy"), ("validation", "f1")),
  "qnli": (("validation", "accuracy"),),
  "sst2": (("validation", "accuracy"),),
  "cola": (("validation", "matthews_corrcoef"),),
  "rte": (("validation", "accuracy"),),
  "mrpc": (("validation", "accuracy"), ("validation", "f1")),
  "stsb": (("validation", "spearman"),),
}


def task_score(task: str, runs: list[dict]) -> float:
  """A task's score: over its seeds' runs (their summaries' "eval"), the mean of the mean of
  its `SCORE_METRICS`, × 100 (MosaicBERT's `glue.py`)."""
  per_seed = [statistics.fmean(run[split][m] for split, m in SCORE_METRICS[task]) for run in runs]
  return 100 * statistics.fmean(per_seed)


def glue_average(scores: dict[str, float]) -> float:
  """The unweighted mean of the task scores: MosaicBERT's GLUE average over its 8 tasks."""
  return statistics.fmean(scores.values())


def ordered(suite: ml_collections.ConfigDict, tasks: list[str]) -> list[str]:
  """MNLI first, the tasks that start from it last, the others in the suite's order."""
  order = list(suite.order)
  return sorted(tasks, key=lambda t: (t != "mnli", t in suite.from_mnli, order.index(t)))


def task_config(
  suite: ml_collections.ConfigDict, task: str, seed: int, init_from: str, overrides: dict
) -> ml_collections.ConfigDict:
  """The suite's config for `task`, with the seed, the starting point and `overrides`
  (flattened keys); the model is the pretraining run's (its preset and architecture
  overrides), or the Hugging Face checkpoint's."""
  config = suite.tasks[task].copy_and_resolve_references()
  config.seed, config.init_from = seed, init_from
  source = experiment.parse_init_from(init_from)
  if source and source[0] == "run":
    pretrained = experiment.saved_config(source[1] / "config.json")
    config.model = pretrained.model
    # The architecture carries over; dropout is the fine-tuning recipe's.
    architecture = {
      k: v for k, v in pretrained.model_overrides.items() if not k.endswith("_dropout")
    }
    config.model_overrides.update(architecture)
  config.update_from_flattened_dict(overrides)
  return config


def check_suite(
  suite: ml_collections.ConfigDict, init_from: str, tasks: list[str], overrides: dict
) -> None:
  """Raises `ValueError` on a task that is not in the suite, or a task config (with the
  overrides and the starting point's model) that `checks.check_config` refuses: before any run
  starts."""
  unknown = [t for t in tasks if t not in suite.order]
  if unknown:
    raise ValueError(f"--tasks {unknown}: MosaicBERT's GLUE suite is {tuple(suite.order)}.")
  for task in tasks:
    config = task_config(suite, task, suite.seeds[task][0], init_from, overrides)
    try:
      checks.check_config(config)
    except ValueError as error:
      raise ValueError(f"{task}: {error}") from error


def run_suite(
  suite: ml_collections.ConfigDict,
  init_from: str,
  workdir: str | pathlib.Path,
  *,
  tasks: list[str] | None = None,
  seeds: list[int] | None = None,
  overrides: dict[str, object] | None = None,
) -> dict:
  """Runs (or resumes) every task and seed of `suite`, then writes and returns the results.

  Args:
    suite: `configs/glue.py:suite`: `order`, `tasks` (a config per task), `seeds` (per task),
      `from_mnli` (the tasks that start from the MNLI run).
    init_from: the pretraining workdir, or "hf:DIR".
    workdir: where the suite's runs, glue.md and glue.json go.
    tasks, seeds: a subset of the tasks; seeds for every task (default each task's own).
    overrides: flattened config keys set in every task's config.

  Returns:
    {"tasks": {task: {"seeds", "runs", "metrics", "score", "start"}}, "average", "complete"}:
    "complete" is False while any run of the suite is unfinished (then there is no average),
    and "average" covers MosaicBERT's 8 tasks only when all 8 ran.
  """
  workdir = pathlib.Path(workdir)
  tasks = list(tasks or suite.order)
  check_suite(suite, init_from, tasks, overrides or {})
  results, complete = {}, True
  for task in ordered(suite, tasks):
    start = init_from
    mnli = workdir / "mnli" / f"seed{suite.seeds['mnli'][0]}"
    if task in suite.from_mnli and (mnli / "summary.json").exists():
      start = str(mnli)  # as MosaicBERT, from the pretrained model where there is no MNLI run
    runs = {}
    for seed in seeds or suite.seeds[task]:
      run = workdir / task / f"seed{seed}"
      summary = _finished(run)
      if summary is None:
        config = task_config(suite, task, seed, start, overrides or {})
        summary = loop.train_and_evaluate(config, run)
      if summary["status"] != "completed":
        complete = False
        break
      runs[seed] = summary["eval"]
    results[task] = _task_results(task, runs, start)
    if not complete:
      break
  scores = {task: r["score"] for task, r in results.items() if r["runs"]}
  result = {"tasks": results, "complete": complete, "average": None, "average_tasks": []}
  if complete and scores:
    result["average"], result["average_tasks"] = glue_average(scores), sorted(scores)
  if jax.process_index() == 0:
    files.write_json(workdir / "glue.json", result)
    files.write_text(workdir / "glue.md", report(result, len(suite.order)))
  return result


def _finished(run: pathlib.Path) -> dict | None:
  path = run / "summary.json"
  if not path.exists():
    return None
  summary = files.read_json(path, "run summary")
  return summary if summary["status"] == "completed" else None


def _task_results(task: str, runs: dict[int, dict], start: str) -> dict:
  metrics = {}
  for split, name in SCORE_METRICS[task]:
    values = [run[split][name] for run in runs.values()]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    metrics[f"{split}/{name}"] = [statistics.fmean(values), spread] if values else None
  return {
    "seeds": list(runs),
    "runs": runs,
    "metrics": metrics,
    "score": task_score(task, list(runs.values())) if runs else None,
    "start": start,
  }


def report(result: dict, suite_size: int) -> str:
  """glue.md: per task its metrics (mean ± std over seeds, × 100) and score, then the average
  (`suite_size`: how many tasks the full suite has)."""
  rows = []
  for task, r in result["tasks"].items():
    metrics = ", ".join(
      f"{name} {100 * m[0]:.2f} ± {100 * m[1]:.2f}" for name, m in r["metrics"].items() if m
    )
    score = f"{r['score']:.2f}" if r["score"] is not None else "—"
    rows.append((task, len(r["seeds"]), metrics, score))
  header = ("task", "seeds", "metrics (dev, mean ± std × 100)", "score")
  lines = [markdown.table(header, rows, align="lrlr"), ""]
  if result["average"] is None:
    lines.append("The suite is not complete: rerun the command to finish it; no average yet.")
  else:
    counted = result["average_tasks"]
    which = (
      f"MosaicBERT's {suite_size} tasks"
      if len(counted) == suite_size
      else (
        f"{len(counted)} of MosaicBERT's {suite_size} tasks ({', '.join(counted)}): not "
        "comparable with the full suite's"
      )
    )
    lines.append(f"GLUE average (dev, {which}): **{result['average']:.2f}**")
  return "\n".join(lines) + "\n"
