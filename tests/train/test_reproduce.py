"""The main job's report: per-seed rows, means, baselines and paired differences."""

import pytest
from scipy import stats as scipy_stats

from train import reproduce, tasks


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
  text = reproduce.report(rows(), tasks.get_task("polarity"), REFERENCE)
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


def test_models_parse_presets_with_overrides_and_know_their_baseline():
  model = reproduce.Model.parse("mobius_bert-tiny+mobius_key_value=elementwise+num_mobius_heads=2")
  assert model.preset == "mobius_bert-tiny" and model.baseline == "bert-tiny"
  assert model.overrides == {"mobius_key_value": "elementwise", "num_mobius_heads": 2}
  assert reproduce.Model.parse("roformer-tiny").baseline is None
  with pytest.raises(ValueError, match=r"\+field=value"):
    reproduce.Model.parse("bert-tiny+dropout")


def test_format_cell_gives_the_mean_and_the_sample_std():
  assert reproduce.format_cell([0.7]) == "0.700"
  assert reproduce.format_cell([0.7, 0.8]) == "0.750 ± 0.071"
  assert reproduce.format_cell([1000.4, 1200.0], digits=0) == "1100 ± 141"
  # Where some runs did not record a value, the cell says how many did.
  assert reproduce.format_cell([None, 1000.4, None, 1200.0], digits=0) == "1100 ± 141 (2 of 4)"
  assert reproduce.format_cell([None, 0.7]) == "0.700 (1 of 2)"
  assert reproduce.format_cell([None, None]) == "n/a"


def test_an_interrupted_pretraining_is_not_fine_tuned(monkeypatch, tmp_path):
  # A signal stops the pretraining (its checkpoint saved): the fine-tuning must not start from
  # it, and the driver reports no row, so rerunning the command resumes the pretraining.
  started = []

  def train_and_evaluate(config, workdir):
    started.append(workdir.name)
    return {"status": "interrupted", "step": 3}

  monkeypatch.setattr(reproduce, "configs", lambda model, seed, workdir: ({}, {}, {}))
  monkeypatch.setattr(reproduce.loop, "train_and_evaluate", train_and_evaluate)
  assert reproduce.run_one(reproduce.Model.parse("bert-tiny"), 0, tmp_path) is None
  assert started == ["pretrain"]
