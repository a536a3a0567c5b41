"""The GLUE suite for one pretrained model, as MosaicBERT ran it, and its GLUE average.

  python -m train.glue --init_from runs/mobius-bert --workdir runs/mobius-bert-glue
  python -m train.glue --init_from hf:/models/bert-base-uncased --workdir runs/bert-glue \
    --tasks mnli,rte --seeds 19,8364 --override dtype=float32

Every task of `configs/glue.py` with each of its seeds (or `--seeds`) is one run of the training
loop, in WORKDIR/TASK/seedSEED: MNLI first, because RTE, MRPC and STS-B start from its
fine-tuned model (its first seed's run), as in MosaicBERT's `glue.py`. Finished runs are skipped
and an interrupted one resumes, so rerunning the command finishes the suite. Then one table,
WORKDIR/glue.md and glue.json: each task's metrics (mean ± std over seeds), its score and the
average, by MosaicBERT's rules (`task_score`, `glue_average`).

The scores are on GLUE's dev (validation) splits: TFDS does not hold GLUE's test labels, and the
GLUE leaderboard's test-set average (which also counts WNLI and uses other metrics) is not
comparable with it.
"""

from __future__ import annotations

import ast
import pathlib
import statistics

import jax
import ml_collections
from absl import app, flags, logging

from configs import glue as recipe
from train import experiment, files, loop, partitioning

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


def ordered(tasks: list[str]) -> list[str]:
  """MNLI first, the tasks that start from it last, the others in `configs/glue.py`'s order."""
  return sorted(
    tasks, key=lambda t: (t != "mnli", t in recipe.FROM_MNLI, list(recipe.TASKS).index(t))
  )


def task_config(
  task: str, seed: int, init_from: str, overrides: dict[str, object]
) -> ml_collections.ConfigDict:
  """`configs/glue.py`'s recipe for `task`, the seed, the starting point, and `overrides`
  (flattened keys); the model is the pretraining run's (its preset and architecture overrides),
  or the Hugging Face checkpoint's."""
  config = recipe.get_config(task)
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


def run_suite(
  init_from: str,
  workdir: str | pathlib.Path,
  *,
  tasks: list[str] | None = None,
  seeds: list[int] | None = None,
  overrides: dict[str, object] | None = None,
) -> dict:
  """Runs (or resumes) every task and seed, then writes and returns the results.

  Returns:
    {"tasks": {task: {"seeds", "runs", "metrics", "score", "start"}}, "average", "complete"}:
    "complete" is False while any run of the suite is unfinished (then there is no average),
    and "average" covers MosaicBERT's 8 tasks only when all 8 ran.
  """
  workdir = pathlib.Path(workdir)
  tasks = ordered(tasks or list(recipe.TASKS))
  unknown = [t for t in tasks if t not in recipe.TASKS]
  if unknown:
    raise ValueError(f"--tasks {unknown}: MosaicBERT's GLUE suite is {tuple(recipe.TASKS)}.")
  results, complete = {}, True
  for task in tasks:
    start = init_from
    mnli = workdir / "mnli" / f"seed{recipe.SEEDS['mnli'][0]}"
    if task in recipe.FROM_MNLI and (mnli / "summary.json").exists():
      start = str(mnli)  # as MosaicBERT, from the pretrained model where there is no MNLI run
    runs = {}
    for seed in seeds or recipe.SEEDS[task]:
      run = workdir / task / f"seed{seed}"
      summary = _finished(run)
      if summary is None:
        summary = loop.train_and_evaluate(task_config(task, seed, start, overrides or {}), run)
      if summary["status"] != "completed":
        complete = False
        break
      runs[seed] = summary["eval"]
    results[task] = _task_results(task, runs, start)
    if not complete:
      break
  scores = {task: r["score"] for task, r in results.items() if r["runs"]}
  suite = {"tasks": results, "complete": complete, "average": None, "average_tasks": []}
  if complete and scores:
    suite["average"], suite["average_tasks"] = glue_average(scores), sorted(scores)
  if jax.process_index() == 0:
    files.write_json(workdir / "glue.json", suite)
    files.write_text(workdir / "glue.md", markdown(suite))
  return suite


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


def markdown(suite: dict) -> str:
  """glue.md: per task its metrics (mean ± std over seeds, × 100) and score, then the average."""
  lines = ["| task | seeds | metrics (dev, mean ± std × 100) | score |", "|---|---:|---|---:|"]
  for task, r in suite["tasks"].items():
    metrics = ", ".join(
      f"{name} {100 * m[0]:.2f} ± {100 * m[1]:.2f}" for name, m in r["metrics"].items() if m
    )
    score = f"{r['score']:.2f}" if r["score"] is not None else "—"
    lines.append(f"| {task} | {len(r['seeds'])} | {metrics} | {score} |")
  lines.append("")
  if suite["average"] is None:
    lines.append("The suite is not complete: rerun the command to finish it; no average yet.")
  else:
    counted = suite["average_tasks"]
    which = (
      "MosaicBERT's 8 tasks"
      if len(counted) == len(recipe.TASKS)
      else (
        f"{len(counted)} of MosaicBERT's 8 tasks ({', '.join(counted)}): not comparable with "
        "the full suite's"
      )
    )
    lines.append(f"GLUE average (dev, {which}): **{suite['average']:.2f}**")
  return "\n".join(lines) + "\n"


def parse_overrides(pairs: list[str]) -> dict[str, object]:
  """`["key=value", …]` (flattened config keys) → {key: value}, values as Python literals."""
  overrides = {}
  for pair in pairs:
    key, sep, value = pair.partition("=")
    if not sep:
      raise ValueError(f"--override {pair!r}: use KEY=VALUE, e.g. dtype=float32.")
    try:
      overrides[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      overrides[key] = value  # a bare string
  return overrides


def define_flags() -> None:
  """The command's flags (defined when it runs, not on import: `train.reproduce` and
  `train.main` have a --workdir of their own)."""
  flags.DEFINE_string("init_from", None, "A pretraining workdir, or hf:DIR.", required=True)
  flags.DEFINE_string("workdir", None, "Where the suite's runs go.", required=True)
  flags.DEFINE_list("tasks", None, "Tasks to run (default all 8 of MosaicBERT's).")
  flags.DEFINE_list("seeds", None, "Seeds for every task (default: each task's own).")
  flags.DEFINE_multi_string("override", [], "KEY=VALUE for every task's config.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  partitioning.join_processes()
  args = flags.FLAGS
  suite = run_suite(
    args.init_from,
    args.workdir,
    tasks=args.tasks,
    seeds=[int(s) for s in args.seeds] if args.seeds else None,
    overrides=parse_overrides(args.override),
  )
  if jax.process_index() == 0:
    print(markdown(suite))


if __name__ == "__main__":
  define_flags()
  app.run(main)
