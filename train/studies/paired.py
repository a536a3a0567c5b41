"""The paper's pipeline in miniature, as a paired comparison: the main job's study.

For every seed and model: pretrain (the pretraining config), fine-tune from it (the
fine-tuning config), and fine-tune the same model from scratch with the same budget (does
pretraining help?); then analyse the fine-tuned model. Each model and seed gives one row
(`run_one`); `train.studies.report.report` turns the rows into the study's report. Seed s of
every model sees the same data order and masking, so the rows pair by seed.

A model is a preset, optionally with `+field=value` ModelConfig overrides (a control such as a
parameter-matched MöbiusBERT). Runs resume from their checkpoints: a second call only reads.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import ml_collections

from mobius_jax.models import ModelConfig
from train import cli
from train.core import checks, experiment, loop
from train.data import tasks
from train.studies import analysis

MLM_15 = f"validation_mask{experiment.EVAL_MASK_RATE:g}"


@dataclasses.dataclass(frozen=True)
class Model:
  """A model of the comparison: a preset and ModelConfig overrides."""

  name: str  # as given: "preset" or "preset+field=value+…"
  preset: str
  overrides: dict

  @classmethod
  def parse(cls, name: str) -> Model:
    """ "preset+field=value+…" → Model.

    Raises:
      ValueError: an override is not field=value, or the preset or a field is unknown.
    """
    preset, overrides = cli.parse_model_name(name)
    try:
      ModelConfig.preset(preset, **overrides)
    except (ValueError, TypeError) as error:
      raise ValueError(f"--models {name!r}: {error}") from error
    return cls(name, preset, overrides)

  @property
  def baseline(self) -> str | None:
    """The vanilla preset a Möbius model is compared with (same family and size)."""
    return self.preset.removeprefix("mobius_") if self.preset.startswith("mobius_") else None


@dataclasses.dataclass(frozen=True)
class Study:
  """What every model of the study is trained with."""

  pretrain: ml_collections.ConfigDict  # the pretraining config
  finetune: ml_collections.ConfigDict  # the fine-tuning config (its task, its budget)


def configs(study: Study, model: Model, seed: int, workdir: pathlib.Path):
  """(pretraining, fine-tuning, fine-tuning from scratch) configs of one model and seed."""
  pretrain, finetune = (c.copy_and_resolve_references() for c in (study.pretrain, study.finetune))
  for config in (pretrain, finetune):
    config.model, config.seed = model.preset, seed
    config.model_overrides.update(model.overrides)
  scratch = finetune.copy_and_resolve_references()
  finetune.init_from = str(workdir / "pretrain")
  return pretrain, finetune, scratch


def run_one(study: Study, model: Model, seed: int, workdir: pathlib.Path) -> dict | None:
  """Pretrains and fine-tunes `model`, fine-tunes it from scratch, analyses the fine-tuned
  model (into workdir/analysis); returns its row, or None when a run was interrupted (a signal
  saved its checkpoint: rerunning the command resumes it)."""
  summaries = []
  runs = zip(("pretrain", "finetune", "scratch"), configs(study, model, seed, workdir), strict=True)
  for run, config in runs:
    path = workdir / run
    summary = loop.finished_summary(config, path) or loop.train_and_evaluate(config, path)
    if summary["status"] != "completed":
      return None  # the fine-tuning must not start from an unfinished pretraining
    summaries.append(summary)
  first, second, third = summaries
  metric = tasks.get_task(study.finetune.task).metrics[0]

  def score(summary, split):
    return summary["eval"].get(split, {}).get(metric, float("nan"))

  analysed = None
  if jax.process_index() == 0:
    analysed = analysis.analysis_of(workdir)
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
    **(analysis_cells(analysed) if analysed else {}),
    # The logged training curves (with --diagnostics, gradient norms per group, |det| and
    # pole distances): what tells a run that trained from one that did not.
    "curves": {"pretrain": first["train"], "finetune": second["train"]},
  }


def analysis_cells(analysed: dict) -> dict:
  """A fine-tuned model's map-type shares (Möbius models) and near-zero attention shares per
  head kind (from `analysis.analyze`'s report)."""
  cells = {
    f"near_zero/{kind}": entry["near_zero_share"]
    for kind, entry in analysed["attention"]["by_kind"].items()
  }
  if analysed["maps"]["layers"]:  # a model with Möbius layers
    cells.update({f"maps/{t}": v for t, v in analysed["maps"]["total"]["shares"].items()})
  return cells


def check_study(study: Study, models: list[Model]) -> None:
  """Raises `ValueError` on a config of the study that `checks.check_config` refuses (the
  fine-tuning task among them): before any run starts."""
  for model in models:
    for config in configs(study, model, 0, pathlib.Path("workdir")):
      try:
        checks.check_config(config)
      except ValueError as error:
        raise ValueError(f"--models {model.name!r}, {config.mode}: {error}") from error


def run_study(
  study: Study, models: list[Model], seeds: int, workdir: pathlib.Path
) -> list[dict] | None:
  """Every model's row for seeds 0 … `seeds` − 1 (runs in WORKDIR/seedS/MODEL/); None when a
  run was interrupted (calling again resumes it). Every config is checked first."""
  check_study(study, models)
  rows = []
  for seed in range(seeds):
    for model in models:
      row = run_one(study, model, seed, workdir / f"seed{seed}" / model.name)
      if row is None:
        if jax.process_index() == 0:
          print(f"Interrupted (seed {seed}, {model.name}); rerun the same command to resume.")
        return None
      rows.append(row)
  return rows
