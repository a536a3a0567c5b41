"""Paired, multi-seed comparison of two models: is the treatment better than the baseline?

Runs are paired by seed: seed s of both models sees the same data order and masking, so the
per-seed differences cancel what the seed does to both and a paired t-test on them is the fair
test. With a handful of seeds the t-interval is wide. The result is numbers only
(`PairedDifference`); `train.studies.report.verdict` says in words what they mean.

  result = paired_difference(mobius_test_accuracies, bert_test_accuracies)
  print(result.interval, report.verdict(result))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

# Differences closer together than this, relative to the values' scale, count as equal: their
# spread is rounding error (0.8 - 0.7 != 0.7 - 0.6 in floating point), not seed variance.
_RELATIVE_TOLERANCE = 1e-12


def _checked(values: Sequence[float], name: str) -> np.ndarray:
  array = np.asarray(values, dtype=np.float64)
  if array.ndim != 1 or array.size == 0:
    raise ValueError(f"{name} must be a non-empty sequence of numbers, got {values!r}.")
  if not np.all(np.isfinite(array)):
    raise ValueError(f"{name} holds NaN or infinite values ({values!r}): a run failed or diverged.")
  return array


def mean_std(values: Sequence[float]) -> tuple[float, float]:
  """The mean and the sample standard deviation (ddof 1) of `values`; the std is NaN for one.

  Raises:
    ValueError: `values` is empty or holds NaN or infinite values.
  """
  array = _checked(values, "values")
  std = float(np.std(array, ddof=1)) if array.size > 1 else math.nan
  return float(np.mean(array)), std


@dataclasses.dataclass(frozen=True)
class PairedDifference:
  """A paired t-test of treatment − baseline over n seeds (`paired_difference`).

  With one seed there is no interval (None) and `std`, `standard_error`, `t` and `p_value` are
  NaN. With differences all equal (no spread) there is no interval either: `std` is 0, and `t`
  and `p_value` are ±inf and 0 for a nonzero difference, NaN for a zero one (then
  `difference` is exactly 0).
  """

  n: int
  treatment_mean: float
  baseline_mean: float
  difference: float  # the mean paired difference
  std: float  # the differences' sample std (ddof 1)
  standard_error: float  # std / √n
  confidence: float  # the two-sided interval's coverage
  interval: tuple[float, float] | None  # the t-interval with n − 1 degrees of freedom
  t: float
  p_value: float  # two-sided, as `scipy.stats.ttest_rel`

  @property
  def no_spread(self) -> bool:
    """Several seeds, all with the same difference."""
    return self.n > 1 and self.std == 0.0


def paired_difference(
  treatment: Sequence[float], baseline: Sequence[float], *, confidence: float = 0.95
) -> PairedDifference:
  """A paired t-test of `treatment` − `baseline`, runs paired by seed (index i with index i).

  Args:
    treatment: the treatment's measure per seed (higher is better: accuracy, F1, …).
    baseline: the baseline's measure for the same seeds, in the same order.
    confidence: the two-sided interval's coverage, in (0, 1).

  Raises:
    ValueError: the sequences are empty, differ in length or hold NaN or infinite values, or
      `confidence` is not in (0, 1).
  """
  treatment_array = _checked(treatment, "treatment")
  baseline_array = _checked(baseline, "baseline")
  if treatment_array.size != baseline_array.size:
    raise ValueError(
      f"Paired runs need one baseline per treatment run: got {treatment_array.size} treatment "
      f"and {baseline_array.size} baseline values."
    )
  if not 0 < confidence < 1:
    raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
  n = int(treatment_array.size)
  differences = treatment_array - baseline_array
  difference = float(np.mean(differences))
  scale = max(np.max(np.abs(treatment_array)), np.max(np.abs(baseline_array)))
  result = PairedDifference(
    n=n,
    treatment_mean=float(np.mean(treatment_array)),
    baseline_mean=float(np.mean(baseline_array)),
    difference=difference,
    std=math.nan,
    standard_error=math.nan,
    confidence=confidence,
    interval=None,
    t=math.nan,
    p_value=math.nan,
  )
  if n == 1:
    return result
  if np.ptp(differences) <= _RELATIVE_TOLERANCE * scale:  # no spread
    if abs(difference) <= _RELATIVE_TOLERANCE * scale:
      return dataclasses.replace(result, difference=0.0, std=0.0, standard_error=0.0)
    t = math.copysign(math.inf, difference)
    return dataclasses.replace(result, std=0.0, standard_error=0.0, t=t, p_value=0.0)
  std = float(np.std(differences, ddof=1))
  standard_error = std / math.sqrt(n)
  t = difference / standard_error
  half_width = stats.t.ppf(0.5 + confidence / 2, df=n - 1) * standard_error
  return dataclasses.replace(
    result,
    std=std,
    standard_error=standard_error,
    interval=(float(difference - half_width), float(difference + half_width)),
    t=float(t),
    p_value=float(2 * stats.t.sf(abs(t), df=n - 1)),
  )
