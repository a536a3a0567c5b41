"""The paired study's report in Markdown: rows per seed, means, baselines, analysis,
diagnostics and the paired differences in words (`report`); the verdict sentence of a paired
difference (`verdict`)."""

from __future__ import annotations

from mobius_jax import MOBIUS_TYPES
from mobius_jax.analysis import HEAD_KINDS
from train import markdown
from train.data import tasks
from train.studies import stats

# Per-seed measures of a row: (key, column title).
MEASURES = (
  ("mlm_accuracy", "MLM acc (val, 15 %)"),
  ("validation", "val {metric}"),
  ("test", "test {metric}"),
  ("scratch_validation", "no pretraining: val {metric}"),
  ("scratch_test", "no pretraining: test {metric}"),
)


def report(rows: list[dict], task: tasks.Task, reference: dict | None) -> str:
  """The Markdown report of `rows` (`train.studies.paired.run_one`'s), with the baselines
  `reference` (`baselines.classification_baselines`'s) where given."""
  metric = task.metrics[0]
  titles = [title.format(metric=metric) for _, title in MEASURES]
  models = list(dict.fromkeys(row["model"] for row in rows))
  per_seed = [
    (row["model"], row["seed"], *(f"{row[key]:.3f}" for key, _ in MEASURES))
    for row in sorted(rows, key=lambda row: (models.index(row["model"]), row["seed"]))
  ]
  lines = ["Per seed:", "", markdown.table(["model", "seed", *titles], per_seed)]
  lines += [
    "",
    "Mean ± std over seeds (encoder parameters and a pretraining step's XLA FLOPs):",
    "",
    markdown.table(
      ["model", "seeds", "encoder params", "GFLOP/step", *titles, "pretrain tokens/s"],
      [_mean_row(model, [row for row in rows if row["model"] == model]) for model in models],
    ),
  ]
  if reference:
    lines += ["", *baselines_lines(reference, metric)]
  lines += analysis_table(rows, models)
  lines += diagnostics_table(rows, models)
  lines += ["", "Paired differences (same seed):", "", *_differences(rows, models, metric)]
  return "\n".join(lines)


def baselines_lines(reference: dict, metric: str) -> list[str]:
  """Report lines: the baselines `reference` (`baselines.classification_baselines`'s)."""
  bag = reference["bag_of_words"]
  baselines = [
    (name, f"{entry['validation']:.3f}", f"{entry['test']:.3f}")
    for name, entry in (
      ("majority class", reference["majority"]),
      (f"bag of words (C = {bag['C']:g})", bag),
    )
  ]
  return [
    f"Baselines on the same splits ({metric}):",
    "",
    markdown.table(["baseline", "val", "test"], baselines),
  ]


def _mean_row(model: str, mine: list[dict]) -> list[str]:
  # A step's FLOPs are the model's, the same for every seed: any run that recorded them.
  flops = next((row["train_step_flops"] for row in mine if row["train_step_flops"]), None)
  return [
    model,
    str(len(mine)),
    f"{mine[0]['encoder_parameters'] / 1e6:.2f}M",
    f"{flops / 1e9:.1f}" if flops else "n/a",
    *(format_cell([row[key] for row in mine]) for key, _ in MEASURES),
    format_cell([row["tokens_per_second"] for row in mine], digits=0),
  ]


def _differences(rows: list[dict], models: list[str], metric: str) -> list[str]:
  """A line per paired comparison: pretrained − from scratch for each model, and each Möbius
  model − its baseline model (same family and size) on validation and test."""
  lines = []
  for model in models:
    pairs = [("pretrained − from scratch", model, "validation", "scratch_validation")]
    baseline = baseline_of(model)
    if baseline in models:
      pairs += [
        (f"− {baseline}, val {metric}", baseline, "validation", "validation"),
        (f"− {baseline}, test {metric}", baseline, "test", "test"),
      ]
    for label, other, key, other_key in pairs:
      treatment, base = paired(rows, model, key, other, other_key)
      if treatment:
        subject = "pretraining" if other == model else "the Möbius model"
        result = stats.paired_difference(treatment, base)
        lines.append(f"- {model} {label}: {verdict(result, subject=subject)}.")
  return lines


def baseline_of(model: str) -> str | None:
  """The vanilla preset a Möbius model ("mobius_<preset>[+overrides]") is compared with."""
  preset = model.split("+")[0]
  return preset.removeprefix("mobius_") if preset.startswith("mobius_") else None


def verdict(result: stats.PairedDifference, *, subject: str = "the Möbius model", digits=3) -> str:
  """`result` in one plain sentence; `subject` names the treatment ("… is better by …")."""
  percent = f"{100 * result.confidence:g} %"
  mean = ("+" if result.difference > 0 else "") + _number(result.difference, digits)
  if result.n == 1:
    return (
      f"one seed only: the difference is {mean}, with no interval (a {percent} interval needs "
      "two or more paired seeds)"
    )
  better = "better" if result.difference > 0 else "worse"
  if result.no_spread and result.difference == 0.0:
    return (
      f"all {result.n} paired differences are 0: no difference detected, and no spread to "
      f"form a {percent} interval from"
    )
  if result.no_spread:
    return (
      f"all {result.n} paired differences equal {mean}: {subject} is {better} on every seed, "
      f"but with no spread there is no {percent} interval; run more seeds"
    )
  low, high = result.interval
  interval = f"the {percent} interval [{_number(low, digits)}, {_number(high, digits)}]"
  tail = f"p = {result.p_value:.2g}, {result.n} paired seeds"
  if low <= 0 <= high:
    return (
      f"{interval} includes 0: no difference detected at this size (mean difference {mean}, {tail})"
    )
  size = _number(abs(result.difference), digits)
  return f"{interval} excludes 0: {subject} is {better} by {size} ({tail})"


def _number(x: float, digits: int) -> str:
  """`x` with `digits` decimals and a true minus sign, as in the verdicts."""
  return f"{x:.{digits}f}".replace("-", "−")


def analysis_table(rows: list[dict], models: list[str]) -> list[str]:
  """Report lines: the fine-tuned models' map-type shares and near-zero attention shares per
  head kind (mean ± std over seeds); only the columns some row has."""
  columns = [(f"maps/{t}", t) for t in MOBIUS_TYPES] + [
    (f"near_zero/{kind}", f"near-zero attention, {kind} heads") for kind in HEAD_KINDS
  ]
  columns = [(key, title) for key, title in columns if any(key in row for row in rows)]
  if not columns:
    return []
  cells = []
  for model in models:
    mine = [row for row in rows if row["model"] == model]
    cells.append([model, *(format_cell([r[key] for r in mine if key in r]) for key, _ in columns)])
  return [
    "",
    "The fine-tuned models analysed (`train.analyze`): shares of map types, shares of near-zero "
    "attention weights (< 0.1 / tokens) per head kind; mean ± std over seeds:",
    "",
    markdown.table(["model", *(title for _, title in columns)], cells),
  ]


def diagnostics_table(rows: list[dict], models: list[str]) -> list[str]:
  """Report lines: per model and seed, how fine-tuning went (from the curves logged with
  diagnostics): when the training loss first fell 10 % below its first logged value (a
  classifier's way off the majority-class plateau), the largest gradient norm per parameter
  group, the smallest |ad − bc| at the end, and the smallest |cz + d| met (the pole distance)."""

  def curve(row):
    return row.get("curves", {}).get("finetune", [])

  logged = [row for row in rows if any("grad_norm/other" in entry for entry in curve(row))]
  if not logged:
    return []
  cells = []
  for row in sorted(logged, key=lambda row: (models.index(row["model"]), row["seed"])):
    entries = curve(row)
    first = entries[0]["loss"]
    off = next((str(e["step"]) for e in entries if e["loss"] < 0.9 * first), "never")

    def largest(key, entries=entries):
      values = [e[key] for e in entries if key in e]
      return f"{max(values):.3g}" if values else "n/a"

    poles = [e["pole/distance_min"] for e in entries if "pole/distance_min" in e]
    cells.append(
      [
        row["model"],
        row["seed"],
        off,
        *(largest(f"grad_norm/{group}") for group in ("mobius", "complex", "other")),
        f"{entries[-1]['det/min']:.3g}" if "det/min" in entries[-1] else "n/a",
        f"{min(poles):.3g}" if poles else "n/a",
      ]
    )
  header = [
    *("model", "seed", "loss −10 % at step", "max grad norm: Möbius coefficients"),
    *("complex projections", "other", "min det modulus, end", "min pole distance"),
  ]
  return [
    "",
    "Fine-tuning diagnostics per seed (logged every `log_every_steps` on the step's batch):",
    "",
    markdown.table(header, cells),
  ]


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
