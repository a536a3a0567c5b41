"""The paired comparison (`PairedDifference`) against SciPy and a hand computation, and its edge
cases (with their verdicts, `report.verdict`); the verdicts of intervals are in test_report.py."""

import math
import statistics

import numpy as np
import pytest

from train.studies import report, stats

scipy_stats = pytest.importorskip("scipy.stats")

# Differences 0.03, −0.01, 0.05, 0.03: mean 0.025, sample std √(0.0019 / 3) = 0.025166.
MOBIUS = [0.81, 0.79, 0.84, 0.80]
BERT = [0.78, 0.80, 0.79, 0.77]


@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_agrees_with_scipy(confidence):
  result = stats.paired_difference(MOBIUS, BERT, confidence=confidence)
  reference = scipy_stats.ttest_rel(MOBIUS, BERT)
  assert result.t == pytest.approx(reference.statistic, rel=1e-9)
  assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
  differences = np.subtract(MOBIUS, BERT)
  interval = scipy_stats.t.interval(
    confidence, df=3, loc=np.mean(differences), scale=scipy_stats.sem(differences)
  )
  assert result.interval == pytest.approx(interval, rel=1e-9)
  assert reference.confidence_interval(confidence) == pytest.approx(interval, rel=1e-9)


def test_agrees_with_a_hand_computation():
  result = stats.paired_difference(MOBIUS, BERT)
  std = math.sqrt(0.0019 / 3)
  t_975 = 3.182446305284263  # the t distribution's 97.5 % quantile, 3 degrees of freedom
  assert result.n == 4
  assert result.treatment_mean == pytest.approx(0.81)
  assert result.baseline_mean == pytest.approx(0.785)
  assert result.difference == pytest.approx(0.025)
  assert result.std == pytest.approx(std)
  assert result.standard_error == pytest.approx(std / 2)
  assert result.t == pytest.approx(0.025 / (std / 2))
  assert result.interval == pytest.approx((0.025 - t_975 * std / 2, 0.025 + t_975 * std / 2))
  assert result.confidence == 0.95


def test_one_seed_has_no_interval():
  result = stats.paired_difference([0.8], [0.75])
  assert result.difference == pytest.approx(0.05)
  assert result.interval is None
  assert all(math.isnan(getattr(result, key)) for key in ("std", "standard_error", "t", "p_value"))
  assert report.verdict(result) == (
    "one seed only: the difference is +0.050, with no interval (a 95 % interval needs two or "
    "more paired seeds)"
  )


def test_equal_differences_have_no_interval():
  # 0.8 − 0.7 and 0.7 − 0.6 differ by rounding error only; SciPy reports t ≈ 1.8e15 here.
  result = stats.paired_difference([0.8, 0.7], [0.7, 0.6])
  assert result.interval is None
  assert (result.std, result.t, result.p_value) == (0.0, math.inf, 0.0)
  assert report.verdict(result) == (
    "all 2 paired differences equal +0.100: the Möbius model is better on every seed, but with "
    "no spread there is no 95 % interval; run more seeds"
  )
  assert stats.paired_difference([0.7, 0.6], [0.8, 0.7]).t == -math.inf
  same = stats.paired_difference([0.8, 0.7, 0.9], [0.8, 0.7, 0.9])
  assert same.difference == 0.0
  assert same.interval is None
  assert math.isnan(same.t) and math.isnan(same.p_value)
  assert report.verdict(same) == (
    "all 3 paired differences are 0: no difference detected, and no spread to form a 95 % "
    "interval from"
  )


@pytest.mark.parametrize(
  ("treatment", "baseline", "message"),
  [
    ([0.8, math.nan], [0.7, 0.7], "treatment holds NaN"),
    ([0.8, 0.7], [0.7, math.inf], "baseline holds NaN or infinite"),
    ([0.8, 0.7], [0.7], "got 2 treatment and 1 baseline"),
    ([], [], "non-empty"),
  ],
)
def test_refuses_bad_input(treatment, baseline, message):
  with pytest.raises(ValueError, match=message):
    stats.paired_difference(treatment, baseline)


def test_refuses_a_confidence_outside_zero_to_one():
  with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\)"):
    stats.paired_difference(MOBIUS, BERT, confidence=95)


def test_mean_std_uses_the_sample_std():
  assert stats.mean_std(MOBIUS) == pytest.approx(
    (statistics.fmean(MOBIUS), statistics.stdev(MOBIUS))
  )
  mean, std = stats.mean_std([0.8])
  assert mean == 0.8 and math.isnan(std)
  with pytest.raises(ValueError, match="NaN"):
    stats.mean_std([0.8, math.nan])
