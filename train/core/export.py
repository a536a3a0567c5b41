"""A training run as a transformers model folder: `export_run`, what `python -m train.export`
runs (`mobius_jax.models.export` writes the folder; the run gives the model, its head, its
tokenizer and the model card's training and evaluation tables)."""

from __future__ import annotations

import pathlib

from mobius_jax.models import export
from train import files
from train.core import experiment
from train.core.experiment import Run, restore_run


def export_run(workdir: str | pathlib.Path, out: str | pathlib.Path, step: int | None = None):
  """Writes the run in `workdir` (at `step`, default the latest checkpoint) to the folder
  `out` and returns it.

  Raises:
    FileNotFoundError: `workdir` is no training workdir, or holds no checkpoint.
    ValueError: the model cannot be exported (the message names the option).
  """
  workdir = pathlib.Path(workdir)
  run = restore_run(workdir, step)
  summary_file = workdir / "summary.json"
  summary = files.read_json(summary_file, "run's summary") if summary_file.exists() else {}
  if summary.get("step") != run.step:
    summary = {}  # the summary speaks for another step than the exported checkpoint's
  card = export.model_card(
    run.model_config,
    run.params,
    title=f"{experiment.model_name(run.config)}, {_objective(run)}",
    training=training_rows(run, summary),
    evaluation=summary.get("eval"),
  )
  return export.save_pretrained(
    run.params, run.model_config, out, tokenizer=[workdir / "tokenizer.json"], card=card
  )


def _objective(run: Run) -> str:
  config = run.config
  if config.mode == "pretrain":
    return f"masked LM on {config.corpus}"
  return f"fine-tuned on {config.task}"


def training_rows(run: Run, summary: dict) -> dict[str, object]:
  """The model card's training table: what the run's config.json and summary.json say."""
  config, opt = run.config, run.config.optimizer
  overrides = config.model_overrides.to_dict()
  rows = {
    "objective": _objective(run)
    + (f", {config.mask_rate:g} of the tokens masked" if config.mode == "pretrain" else ""),
    "model": experiment.model_name(config) + (f" with {overrides}" if overrides else ""),
    "initialisation": config.init_from or "random",
    "steps": f"{run.step} of {config.num_train_steps}",
    "batch": f"{config.batch_size} rows of up to {config.max_len} tokens",
    "optimiser": (
      f"AdamW, peak learning rate {opt.learning_rate:g}, {opt.warmup_ratio:g} warm-up, "
      f"{opt.schedule} decay, betas ({opt.b1:g}, {opt.b2:g}), weight decay {opt.weight_decay:g}"
    ),
    "precision": config.dtype,
    "seed": config.seed,
  }
  if summary.get("wall_time_seconds") is not None:
    rows["wall time"] = f"{summary['wall_time_seconds']:.0f} s"
  return rows
