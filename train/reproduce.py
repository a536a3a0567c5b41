"""The paper's pipeline in miniature on the offline data, as a paired comparison: the main job.

For every seed and every model of --models (default: BERT-tiny and MöbiusBERT-tiny), pretrain
on WikiText-2, fine-tune on the polarity task, and fine-tune the same model from scratch with the
same fine-tuning budget (does pretraining help?). Then one report: a row per model and seed,
mean ± std per model, the baselines on the same splits (majority class, bag of words), and for
each Möbius model the paired difference from its baseline model (same family and size, same
seed: the same data order and masking) with a 95 % t-interval and the verdict in words. The
settings are `configs/default.py`'s, chosen on validation data (see the README).

  python -m train.reproduce                    # the default: one seed, about 10 minutes
  python -m train.reproduce --seeds 5 \\
    --models bert-tiny,mobius_bert-tiny,roformer-tiny,mobius_roformer-tiny
  python -m train.reproduce --models bert-tiny,mobius_bert-tiny+mobius_key_value=elementwise
  python -m train.reproduce --seeds 3 --pretrain_steps 20 --finetune_steps 20   # a smoke run

A model is a preset, optionally with `+field=value` ModelConfig overrides (a control such as a
parameter-matched MöbiusBERT). Runs resume from their checkpoints: a second call only prints.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time

import jax
from absl import app, flags, logging

from configs import default
from mobius_jax import MOBIUS_TYPES
from mobius_jax.analysis import HEAD_KINDS
from train import analyze, baselines, experiment, files, glue, loop, partitioning, stats, tasks

_WORKDIR = flags.DEFINE_string("workdir", "runs/reproduce", "Where every run's files go.")
_SEEDS = flags.DEFINE_integer("seeds", 1, "How many seeds (0 … n − 1) to run.")
_MODELS = flags.DEFINE_list(
  "models", ["bert-tiny", "mobius_bert-tiny"], "Presets, each optionally +field=value."
)
_TASK = flags.DEFINE_string("task", "polarity", "The fine-tuning task (train.tasks.TASKS).")
_PRETRAIN_STEPS = flags.DEFINE_integer("pretrain_steps", None, "Override the config's steps.")
_FINETUNE_STEPS = flags.DEFINE_integer("finetune_steps", None, "Override the config's steps.")
_DIAGNOSTICS = flags.DEFINE_bool(
  "diagnostics", True, "Log gradient norms per group, determinants and pole distances."
)

MLM_15 = f"validation_mask{experiment.EVAL_MASK_RATE:g}"

# Per-seed measures: (key, column title).
MEASURES = (
  ("mlm_accuracy", "MLM acc (val, 15 %)"),
  ("validation", "val {metric}"),
  ("test", "test {metric}"),
  ("scratch_validation", "no pretraining: val {metric}"),
  ("scratch_test", "no pretraining: test {metric}"),
)


@dataclasses.dataclass(frozen=True)
class Model:
  """A model of the comparison: a preset and ModelConfig overrides."""

  name: str  # as given: "preset" or "preset+field=value+…"
  preset: str
  overrides: dict

  @classmethod
  def parse(cls, name: str) -> Model:
    preset, *pairs = name.split("+")
    try:
      overrides = glue.parse_overrides(pairs)
    except ValueError as error:
      raise ValueError(f"--models {name!r}: write overrides as +field=value.") from error
    return cls(name, preset, overrides)

  @property
  def baseline(self) -> str | None:
    """The vanilla preset a Möbius model is compared with (same family and size)."""
    return self.preset.removeprefix("mobius_") if self.preset.startswith("mobius_") else None


def configs(model: Model, seed: int, workdir: pathlib.Path):
  """(pretraining, fine-tuning, fine-tuning from scratch) configs of one model and seed."""
  pretrain, finetune = default.get_config(), default.finetune_config()
  for config in (pretrain, finetune):
    config.model, config.seed = model.preset, seed
    config.model_overrides.update(model.overrides)
    config.diagnostics = _DIAGNOSTICS.value
  finetune.task = _TASK.value
  if _PRETRAIN_STEPS.value:
    pretrain.num_train_steps = _PRETRAIN_STEPS.value
  if _FINETUNE_STEPS.value:
    finetune.num_train_steps = _FINETUNE_STEPS.value
  scratch = finetune.copy_and_resolve_references()
  finetune.init_from = str(workdir / "pretrain")
  return pretrain, finetune, scratch


def run_one(model: Model, seed: int, workdir: pathlib.Path) -> dict | None:
  """Pretrains and fine-tunes `model`, fine-tunes it from scratch, analyses the fine-tuned
  model (into workdir/analysis); returns its row, or None when a run was interrupted (a signal
  saved its checkpoint: rerunning the command resumes it)."""
  summaries = []
  runs = zip(("pretrain", "finetune", "scratch"), configs(model, seed, workdir), strict=True)
  for run, config in runs:
    summary = loop.train_and_evaluate(config, workdir / run)
    if summary["status"] != "completed":
      return None  # the fine-tuning must not start from an unfinished pretraining
    summaries.append(summary)
  first, second, third = summaries
  metric = tasks.get_task(_TASK.value).metrics[0]

  def score(summary, split):
    return summary["eval"].get(split, {}).get(metric, float("nan"))

  analysis = None
  if jax.process_index() == 0:
    analysis = analyze.analyze(experiment.restore_run(workdir / "finetune"), workdir / "analysis")
  return {
    "model": model.name,
    "seed": seed,
    "encoder_parameters": first["encoder_parameters"],
    "train_step_flops": first["train_step_flops"],
    # At BERT's 15 % masking, whatever the pretraining's rate (comparable across settings).
    "mlm_accuracy": first["eval"].get(MLM_15, first["eval"]["validation"])["accuracy"],
    "validation": score(second, "validation"),
    "test": score(second, "test"),
    "scratch_validation": score(third, "validation"),
    "scratch_test": score(third, "test"),
    "tokens_per_second": first["tokens_per_second"],
    "wall_time_seconds": sum(s["wall_time_seconds"] for s in (first, second, third)),
    **(analysis_cells(analysis) if analysis else {}),
    # The logged training curves (with --diagnostics, gradient norms per group, |det| and
    # pole distances): what tells a run that trained from one that did not.
    "curves": {"pretrain": first["train"], "finetune": second["train"]},
  }


def analysis_cells(analysis: dict) -> dict:
  """A fine-tuned model's map-type shares (Möbius models) and near-zero attention shares per
  head kind (`train.analyze.analyze`'s report)."""
  cells = {
    f"near_zero/{kind}": entry["near_zero_share"]
    for kind, entry in analysis["attention"]["by_kind"].items()
  }
  if analysis["maps"]["layers"]:  # a model with Möbius layers
    cells.update({f"maps/{t}": v for t, v in analysis["maps"]["total"]["shares"].items()})
  return cells


def report(rows: list[dict], task: tasks.Task, reference: dict | None) -> str:
  """The Markdown report: per-seed rows, per-model means, baselines, paired differences."""
  metric = task.metrics[0]
  titles = [title.format(metric=metric) for _, title in MEASURES]
  models = list(dict.fromkeys(row["model"] for row in rows))
  lines = ["Per seed:", "", "| model | seed | " + " | ".join(titles) + " |"]
  lines.append("|---|---:" + "|---:" * len(MEASURES) + "|")
  for row in sorted(rows, key=lambda row: (models.index(row["model"]), row["seed"])):
    cells = [f"{row[key]:.3f}" for key, _ in MEASURES]
    lines.append(f"| {row['model']} | {row['seed']} | " + " | ".join(cells) + " |")
  lines += [
    "",
    "Mean ± std over seeds (encoder parameters and a pretraining step's XLA FLOPs):",
    "",
  ]
  header = ["model", "seeds", "encoder params", "GFLOP/step", *titles, "pretrain tokens/s"]
  lines += ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
  for model in models:
    mine = [row for row in rows if row["model"] == model]
    # A step's FLOPs are the model's, the same for every seed: any run that recorded them.
    flops = next((row["train_step_flops"] for row in mine if row["train_step_flops"]), None)
    cells = [
      str(len(mine)),
      f"{mine[0]['encoder_parameters'] / 1e6:.2f}M",
      f"{flops / 1e9:.1f}" if flops else "n/a",
      *(format_cell([row[key] for row in mine]) for key, _ in MEASURES),
      format_cell([row["tokens_per_second"] for row in mine], digits=0),
    ]
    lines.append(f"| {model} | " + " | ".join(cells) + " |")
  if reference:
    lines += ["", f"Baselines on the same splits ({metric}):", "", "| baseline | val | test |"]
    lines.append("|---|---:|---:|")
    bag = reference["bag_of_words"]
    for name, entry in (
      ("majority class", reference["majority"]),
      (f"bag of words (C = {bag['C']:g})", bag),
    ):
      lines.append(f"| {name} | {entry['validation']:.3f} | {entry['test']:.3f} |")
  lines += analysis_table(rows, models)
  lines += diagnostics_table(rows, models)
  lines += ["", "Paired differences (same seed):", ""]
  for model in models:
    mobius = Model.parse(model)
    pairs = [
      ("pretrained − from scratch", model, "validation", "scratch_validation", "pretraining")
    ]
    if mobius.baseline in models:
      pairs += [
        (f"− {mobius.baseline}, val {metric}", mobius.baseline, "validation", "validation", None),
        (f"− {mobius.baseline}, test {metric}", mobius.baseline, "test", "test", None),
      ]
    for label, other, key, other_key, subject in pairs:
      treatment, base = paired(rows, model, key, other, other_key)
      if treatment:
        kwargs = {"subject": subject} if subject else {}
        verdict = stats.paired_difference(treatment, base, **kwargs)["verdict"]
        lines.append(f"- {model} {label}: {verdict}.")
  return "\n".join(lines)


def analysis_table(rows: list[dict], models: list[str]) -> list[str]:
  """Report lines: the fine-tuned models' map-type shares and near-zero attention shares per
  head kind (mean ± std over seeds); only the columns some row has."""
  columns = [(f"maps/{t}", t) for t in MOBIUS_TYPES] + [
    (f"near_zero/{kind}", f"near-zero attention, {kind} heads") for kind in HEAD_KINDS
  ]
  columns = [(key, title) for key, title in columns if any(key in row for row in rows)]
  if not columns:
    return []
  lines = [
    "",
    "The fine-tuned models analysed (`train.analyze`): shares of map types, shares of near-zero "
    "attention weights (< 0.1 / tokens) per head kind; mean ± std over seeds:",
    "",
    "| model | " + " | ".join(title for _, title in columns) + " |",
    "|---" + "|---:" * len(columns) + "|",
  ]
  for model in models:
    mine = [row for row in rows if row["model"] == model]
    cells = [format_cell([row[key] for row in mine if key in row]) for key, _ in columns]
    lines.append(f"| {model} | " + " | ".join(cells) + " |")
  return lines


def diagnostics_table(rows: list[dict], models: list[str]) -> list[str]:
  """Report lines: per model and seed, how fine-tuning went (from the logged curves, with
  --diagnostics): when the training loss first fell 10 % below its first logged value (a
  classifier's way off the majority-class plateau), the largest gradient norm per parameter
  group, the smallest |ad − bc| at the end, and the smallest |cz + d| met (the pole distance)."""

  def curve(row):
    return row.get("curves", {}).get("finetune", [])

  logged = [row for row in rows if any("grad_norm/other" in entry for entry in curve(row))]
  if not logged:
    return []
  lines = [
    "",
    "Fine-tuning diagnostics per seed (logged every `log_every_steps` on the step's batch):",
    "",
    "| model | seed | loss −10 % at step | max grad norm: Möbius coefficients | complex "
    "projections | other | min det modulus, end | min pole distance |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
  ]
  for row in sorted(logged, key=lambda row: (models.index(row["model"]), row["seed"])):
    entries = curve(row)
    first = entries[0]["loss"]
    off = next((str(e["step"]) for e in entries if e["loss"] < 0.9 * first), "never")

    def largest(key, entries=entries):
      values = [e[key] for e in entries if key in e]
      return f"{max(values):.3g}" if values else "n/a"

    poles = [e["pole/distance_min"] for e in entries if "pole/distance_min" in e]
    cells = [
      off,
      largest("grad_norm/mobius"),
      largest("grad_norm/complex"),
      largest("grad_norm/other"),
      f"{entries[-1]['det/min']:.3g}" if "det/min" in entries[-1] else "n/a",
      f"{min(poles):.3g}" if poles else "n/a",
    ]
    lines.append(f"| {row['model']} | {row['seed']} | " + " | ".join(cells) + " |")
  return lines


def paired(rows, model: str, key: str, other: str, other_key: str):
  """(model's values of `key`, other's values of `other_key`) for the seeds both ran."""
  mine = {row["seed"]: row[key] for row in rows if row["model"] == model}
  theirs = {row["seed"]: row[other_key] for row in rows if row["model"] == other}
  seeds = sorted(mine.keys() & theirs.keys())
  return [mine[s] for s in seeds], [theirs[s] for s in seeds]


def format_cell(values: list[float | None], digits: int = 3) -> str:
  """The mean, and ± the sample std when there are several values; "(k of n)" after it where
  only k of the n values are known (None: a run that did not record it)."""
  known = [v for v in values if v is not None]
  if not known:
    return "n/a"
  if len(known) == 1:
    cell = f"{known[0]:.{digits}f}"
  else:
    mean, std = stats.mean_std(known)
    cell = f"{mean:.{digits}f} ± {std:.{digits}f}"
  return cell if len(known) == len(values) else f"{cell} ({len(known)} of {len(values)})"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax and tfds log much at INFO
  partitioning.join_processes()  # on a pod or cluster JAX detects; else one process
  task = tasks.get_task(_TASK.value)
  models = [Model.parse(name) for name in _MODELS.value]
  root = pathlib.Path(_WORKDIR.value)
  started = time.perf_counter()
  rows = []
  for seed in range(_SEEDS.value):
    for model in models:
      row = run_one(model, seed, root / f"seed{seed}" / model.name)
      if row is None:
        print(f"Interrupted (seed {seed}, {model.name}); rerun the same command to resume.")
        return
      rows.append(row)
  if jax.process_index() == 0:
    reference = None
    if not task.is_regression and task.test_split:
      reference = baselines.classification_baselines(task)
    text = report(rows, task, reference)
    files.write_json(root / "results.json", {"rows": rows, "baselines": reference})
    files.write_text(root / "results.md", text + "\n")
    minutes = (time.perf_counter() - started) / 60
    print(f"\n{_SEEDS.value} seed(s), {task.name}; total {minutes:.1f} min\n\n{text}")


if __name__ == "__main__":
  app.run(main)
