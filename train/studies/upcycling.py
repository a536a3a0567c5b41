"""The comparison where pretraining matters: a pretrained checkpoint fine-tuned as it is, and
upcycled into Möbius models, paired by seed (`python -m train.reproduce --init_from minilm`).

For every seed, each variant fine-tunes from the same checkpoint with the same config: the same
data order and dropout stream, so the rows pair by seed. The variants (`VARIANTS`):

  checkpoint        the checkpoint as it is (a BERT)
  upcycled          Möbius layers first and last (framed), function-preserving upcycling
                    (`upcycle_form="preserving"`): it starts computing the checkpoint's outputs
  upcycled_frozen   the same with its Möbius maps held at the identity (`optimizer.frozen`):
                    the complex channel and its parameters train, the maps do not; what the
                    upcycled model gains over it is what its maps learned
  upcycled_fast     `upcycled` with the parts it adds (the maps, the imaginary channel's gates)
                    on a rate 100× the checkpoint's: at the base rate they barely move
  upcycled_copied   framed, `upcycle_form="copied"` (each Möbius layer's channels start as
                    copies of its source layer: the checkpoint's outputs are not kept)
  widened           the checkpoint with wider feed-forward blocks, function-preserving
                    (`experiment.widened_feed_forward`): as many parameters as `upcycled`
                    (within 1 % for all-MiniLM-L6-v2), all of them vanilla

A variant may carry ModelConfig overrides: "upcycled+num_mobius_heads=6". Runs resume from their
checkpoints: a second call only reads.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import ml_collections

from mobius_jax.models import ModelConfig
from train import cli, markdown
from train.core import checks, loop
from train.data import tasks
from train.studies import analysis, paired, report, stats

_FRAMED = {"model_overrides": {"layout": "framed"}, "upcycle_form": "preserving"}
# Each variant's changes to the fine-tuning config.
VARIANTS = {
  "checkpoint": {},
  "upcycled": _FRAMED,
  "upcycled_frozen": {**_FRAMED, "optimizer": {"frozen": ("query_mobius",)}},
  "upcycled_fast": {
    **_FRAMED,
    "optimizer": {"rate_multipliers": (("query_mobius", 100.0), ("imag_gate_*", 100.0))},
  },
  "upcycled_copied": {**_FRAMED, "upcycle_form": "copied"},
  # all-MiniLM-L6-v2's 1,536 × 1.5: +3.54 M parameters, where framed upcycling adds 3.56 M.
  "widened": {"model_overrides": {"intermediate_size": 2304}},
}
# What `--models` defaults to: the treatment, the checkpoint and the two controls.
STUDY = ("checkpoint", "upcycled", "upcycled_frozen", "widened")
# (treatment, control) pairs the report compares, where both ran.
COMPARISONS = (
  ("upcycled", "checkpoint"),
  ("upcycled_frozen", "checkpoint"),
  ("upcycled_fast", "checkpoint"),
  ("upcycled_copied", "checkpoint"),
  ("widened", "checkpoint"),
  ("upcycled", "upcycled_frozen"),
  ("upcycled", "widened"),
  ("upcycled_fast", "upcycled"),
  ("upcycled", "upcycled_copied"),
)


@dataclasses.dataclass(frozen=True)
class Variant:
  """A variant of `VARIANTS` and ModelConfig overrides."""

  name: str  # as given: "variant" or "variant+field=value+…"
  variant: str
  overrides: dict

  @classmethod
  def parse(cls, name: str) -> Variant:
    """ "variant+field=value+…" → Variant.

    Raises:
      ValueError: the variant is unknown, or an override is not field=value of ModelConfig.
    """
    variant, overrides = cli.parse_model_name(name)
    if variant not in VARIANTS:
      raise ValueError(f"--models {name!r}: with --init_from, use variants of {tuple(VARIANTS)}.")
    unknown = set(overrides) - {field.name for field in dataclasses.fields(ModelConfig)}
    if unknown:
      raise ValueError(f"--models {name!r}: ModelConfig has no field {sorted(unknown)}.")
    return cls(name, variant, overrides)

  def config(self, finetune: ml_collections.ConfigDict, init_from: str, seed: int):
    """The fine-tuning config of this variant and seed, starting from `init_from`."""
    config = finetune.copy_and_resolve_references()
    config.init_from, config.seed = init_from, seed
    changes = VARIANTS[self.variant]
    config.upcycle_form = changes.get("upcycle_form", config.upcycle_form)
    config.optimizer.update(changes.get("optimizer", {}))
    with config.unlocked():  # overrides are new keys of model_overrides
      config.model_overrides.update({**changes.get("model_overrides", {}), **self.overrides})
    return config


def run_one(config: ml_collections.ConfigDict, variant: Variant, workdir: pathlib.Path):
  """Fine-tunes one variant and seed, analyses it (into workdir/analysis); returns its row, or
  None when the run was interrupted (rerunning resumes it)."""
  finetune = workdir / "finetune"
  summary = loop.finished_summary(config, finetune) or loop.train_and_evaluate(config, finetune)
  if summary["status"] != "completed":
    return None
  metric = tasks.get_task(config.task).metrics[0]
  analysed = None
  if jax.process_index() == 0:
    analysed = analysis.analysis_of(workdir)
  return {
    "model": variant.name,
    "seed": config.seed,
    "encoder_parameters": summary["encoder_parameters"],
    "validation": summary["eval"]["validation"][metric],
    "test": summary["eval"].get("test", {}).get(metric, float("nan")),
    "tokens_per_second": summary["tokens_per_second"],
    "wall_time_seconds": summary["wall_time_seconds"],
    **(paired.analysis_cells(analysed) if analysed else {}),
    "curves": {"finetune": summary["train"]},
  }


def run_study(
  finetune: ml_collections.ConfigDict,
  init_from: str,
  variants: list[Variant],
  seeds: int,
  workdir: pathlib.Path,
) -> list[dict] | None:
  """Every variant's row for seeds 0 … `seeds` − 1 (runs in WORKDIR/seedS/VARIANT/); None when
  a run was interrupted (calling again resumes it). Every config is checked first."""
  for variant in variants:
    try:
      checks.check_config(variant.config(finetune, init_from, 0))
    except ValueError as error:
      raise ValueError(f"--models {variant.name!r}: {error}") from error
  rows = []
  for seed in range(seeds):
    for variant in variants:
      config = variant.config(finetune, init_from, seed)
      row = run_one(config, variant, workdir / f"seed{seed}" / variant.name)
      if row is None:
        if jax.process_index() == 0:
          print(f"Interrupted (seed {seed}, {variant.name}); rerun the same command to resume.")
        return None
      rows.append(row)
  return rows


def study_report(rows: list[dict], task: tasks.Task, reference: dict | None) -> str:
  """The Markdown report of `rows` (`run_one`'s): per seed, mean ± std, the baselines, the
  analysis, the diagnostics and the paired differences of `COMPARISONS` in words."""
  metric = task.metrics[0]
  models = list(dict.fromkeys(row["model"] for row in rows))
  ordered = sorted(rows, key=lambda row: (models.index(row["model"]), row["seed"]))
  per_seed = [
    (row["model"], row["seed"], f"{row['validation']:.3f}", f"{row['test']:.3f}") for row in ordered
  ]
  means = []
  for model in models:
    mine = [row for row in rows if row["model"] == model]
    means.append(
      [
        *(model, str(len(mine)), f"{mine[0]['encoder_parameters'] / 1e6:.2f}M"),
        *(report.format_cell([row[key] for row in mine]) for key in ("validation", "test")),
        report.format_cell([row["tokens_per_second"] for row in mine], digits=0),
      ]
    )
  lines = [
    "Per seed:",
    "",
    markdown.table(["model", "seed", f"val {metric}", f"test {metric}"], per_seed),
    "",
    "Mean ± std over seeds:",
    "",
    markdown.table(
      ["model", "seeds", "encoder params", f"val {metric}", f"test {metric}", "tokens/s"], means
    ),
  ]
  if reference:
    lines += ["", *report.baselines_lines(reference, metric)]
  lines += report.analysis_table(rows, models)
  lines += report.diagnostics_table(rows, models)
  lines += ["", "Paired differences (same seed):", ""]
  for treatment, control in COMPARISONS:
    for split in ("validation", "test"):
      values = report.paired(rows, treatment, split, control, split)
      if values[0]:
        result = report.verdict(stats.paired_difference(*values), subject=treatment)
        lines.append(f"- {treatment} − {control}, {split} {metric}: {result}.")
  return "\n".join(lines)
