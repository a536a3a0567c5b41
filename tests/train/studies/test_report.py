"""The paired study's report (`train.studies.report`): per-seed rows, means, baselines, the
analysis and diagnostics tables, the paired differences, and the verdict sentences."""

from scipy import stats as scipy_stats

from train.data import tasks
from train.studies import report, stats


def rows():
  """Three seeds of a BERT and a MöbiusBERT, with made-up numbers."""
  out = []
  for seed, (bert, mobius) in enumerate([(0.70, 0.72), (0.74, 0.73), (0.72, 0.75)]):
    for model, val in (("bert-tiny", bert), ("mobius_bert-tiny", mobius)):
      out.append(
        {
          "model": model,
          "seed": seed,
          "encoder_parameters": 1_000_000,
          "train_step_flops": 2e9,
          "mlm_accuracy": 0.2,
          "validation": val,
          "test": val + 0.01,
          "scratch_validation": val - 0.05,
          "scratch_test": val - 0.04,
          "tokens_per_second": 1000.0,
          "wall_time_seconds": 60.0,
          "near_zero/vanilla" if model == "bert-tiny" else "near_zero/mobius": 0.1 * seed,
        }
      )
      if model == "mobius_bert-tiny":
        out[-1].update({"maps/elliptic": 0.25 * seed, "near_zero/complex": 0.3})
        # Fine-tuning curves logged with --diagnostics: off the plateau at step 100 but seed 2.
        losses = [0.7, 0.6 if seed < 2 else 0.69]
        out[-1]["curves"] = {
          "finetune": [
            {
              "step": 50 * (i + 1),
              "loss": loss,
              "grad_norm/mobius": 2.0 + i + seed,
              "grad_norm/complex": 3.0,
              "grad_norm/other": 10.0,
              "det/min": 0.9 - 0.1 * i,
              "pole/distance_min": 0.5 / (i + 1),
            }
            for i, loss in enumerate(losses)
          ]
        }
  return out


REFERENCE = {
  "majority": {"label": 0, "validation": 0.492, "test": 0.494},
  "bag_of_words": {"C": 4.0, "validation": 0.768, "test": 0.785, "grid": {}},
}


def test_the_report_has_seed_rows_means_baselines_and_paired_intervals():
  text = report.report(rows(), tasks.get_task("polarity"), REFERENCE)
  lines = text.splitlines()
  assert "| mobius_bert-tiny | 2 | 0.200 | 0.750 | 0.760 | 0.700 | 0.710 |" in lines
  # 3 seeds, the mean and the analysis
  assert sum(line.startswith("| bert-tiny | ") for line in lines) == 5
  assert "| mobius_bert-tiny | 3 | 1.00M | 2.0 | 0.200 ± 0.000 | 0.733 ± 0.015 |" in text
  assert "| bag of words (C = 4) | 0.768 | 0.785 |" in lines
  # The analysis: only the columns some model has, n/a where a model has none.
  (header,) = [x for x in lines if x.startswith("| model | elliptic |")]
  assert header.count("|") == 6  # elliptic and near-zero shares of three kinds of heads
  assert "| bert-tiny | n/a | 0.100 ± 0.100 | n/a | n/a |" in lines
  assert "| mobius_bert-tiny | 0.250 ± 0.250 | n/a | 0.100 ± 0.100 | 0.300 ± 0.000 |" in lines
  # The diagnostics: only the runs that logged them, per seed.
  assert "| mobius_bert-tiny | 0 | 100 | 3 | 3 | 10 | 0.8 | 0.25 |" in lines
  assert "| mobius_bert-tiny | 2 | never | 5 | 3 | 10 | 0.8 | 0.25 |" in lines
  assert not [x for x in lines if x.startswith("| bert-tiny | 0 | 100")]
  # The paired interval of MöbiusBERT − BERT (validation), against SciPy's.
  differences = [0.02, -0.01, 0.03]
  low, high = scipy_stats.t.interval(
    0.95, 2, loc=sum(differences) / 3, scale=scipy_stats.sem(differences)
  )
  (line,) = [x for x in lines if x.startswith("- mobius_bert-tiny − bert-tiny, val")]
  assert f"[{low:+.3f}, {high:+.3f}]".replace("+", "") in line.replace("+", "").replace("−", "-")
  assert "includes 0" in line
  (line,) = [x for x in lines if x.startswith("- bert-tiny pretrained − from scratch")]
  assert "pretraining is better on every seed" in line


def test_format_cell_gives_the_mean_and_the_sample_std():
  assert report.format_cell([0.7]) == "0.700"
  assert report.format_cell([0.7, 0.8]) == "0.750 ± 0.071"
  assert report.format_cell([1000.4, 1200.0], digits=0) == "1100 ± 141"
  # Where some runs did not record a value, the cell says how many did.
  assert report.format_cell([None, 1000.4, None, 1200.0], digits=0) == "1100 ± 141 (2 of 4)"
  assert report.format_cell([None, 0.7]) == "0.700 (1 of 2)"
  assert report.format_cell([None, None]) == "n/a"


def test_a_mobius_model_is_compared_with_its_vanilla_preset():
  assert report.baseline_of("mobius_bert-tiny+num_mobius_heads=2") == "bert-tiny"
  assert report.baseline_of("mobius_roformer-base") == "roformer-base"
  assert report.baseline_of("bert-tiny") is None
  rows = [{"model": m, "seed": s, "v": 10 * s + i} for s in (0, 1, 2) for i, m in enumerate("ab")]
  rows.pop()  # b did not run seed 2: the pairs are of seeds 0 and 1
  assert report.paired(rows, "a", "v", "b", "v") == ([0, 10], [1, 11])


# Differences 0.03, −0.01, 0.05, 0.03: mean 0.025, sample std √(0.0019 / 3) = 0.025166.
MOBIUS = [0.81, 0.79, 0.84, 0.80]
BERT = [0.78, 0.80, 0.79, 0.77]


def test_verdict_when_the_interval_includes_zero():
  assert report.verdict(stats.paired_difference(MOBIUS, BERT)) == (
    "the 95 % interval [−0.015, 0.065] includes 0: no difference detected at this size "
    "(mean difference +0.025, p = 0.14, 4 paired seeds)"
  )


def test_verdict_when_the_interval_excludes_zero():
  # Differences 0.02, 0.02, 0.01: t = 0.01667 / 0.00333 = 5 with 2 degrees of freedom.
  better = stats.paired_difference([0.80, 0.82, 0.81], [0.78, 0.80, 0.80])
  assert better.interval[0] > 0
  assert report.verdict(better) == (
    "the 95 % interval [0.002, 0.031] excludes 0: the Möbius model is better by 0.017 "
    "(p = 0.038, 3 paired seeds)"
  )
  worse = stats.paired_difference([0.78, 0.80, 0.80], [0.80, 0.82, 0.81], confidence=0.9)
  assert worse.interval[1] < 0
  assert report.verdict(worse) == (
    "the 90 % interval [−0.026, −0.007] excludes 0: the Möbius model is worse by 0.017 "
    "(p = 0.038, 3 paired seeds)"
  )


def test_the_verdict_names_its_subject_and_rounds_to_its_digits():
  better = stats.paired_difference([0.80, 0.82, 0.81], [0.78, 0.80, 0.80])
  assert report.verdict(better, subject="pretraining", digits=2) == (
    "the 95 % interval [0.00, 0.03] excludes 0: pretraining is better by 0.02 "
    "(p = 0.038, 3 paired seeds)"
  )
