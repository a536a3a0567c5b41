"""Paired, multi-seed comparison of two models: is the treatment better than the baseline?

Runs are paired by seed: seed s of both models sees the same data order and masking, so the
per-seed differences cancel what the seed does to both and a paired t-test on them is the fair
test. With a handful of seeds the t-interval is wide; the verdict says when it cannot tell.

  result = paired_difference(mobius_test_accuracies, bert_test_accuracies)
  print(result["verdict"])
"""

from __future__ import annotations

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


def _number(x: float, digits: int) -> str:
  """`x` with `digits` decimals and a true minus sign, as in the verdicts."""
  return f"{x:.{digits}f}".replace("-", "−")


def paired_difference(
  treatment: Sequence[float],
  baseline: Sequence[float],
  *,
  confidence: float = 0.95,
  digits: int = 3,
  subject: str = "the Möbius model",
) -> dict:
  """A paired t-test of `treatment` − `baseline`, runs paired by seed (index i with index i).

  The measure is one where higher is better (accuracy, F1, a correlation); `subject` names the
  treatment in the verdict.

  Args:
    treatment: the treatment's measure per seed.
    baseline: the baseline's measure for the same seeds, in the same order.
    confidence: the two-sided interval's coverage, in (0, 1).
    digits: decimals of the numbers in the verdict.
    subject: what the treatment is, as the verdict calls it ("the Möbius model is better …").

  Returns:
    A dict: `n`; `treatment_mean` and `baseline_mean`; `difference`, the mean paired difference;
    `std`, the differences' sample std (ddof 1); `standard_error`, std / √n; `confidence`;
    `interval`, the (low, high) t-interval with n − 1 degrees of freedom; `t` and `p_value`, the
    t statistic and its two-sided p-value (as `scipy.stats.ttest_rel`); and `verdict`, a plain
    sentence. With one seed, or differences all equal (no spread), there is no interval: it is
    None, `verdict` says why, and `t` and `p_value` are NaN (or ±inf and 0 for a nonzero
    difference without spread).

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
  no_spread = n > 1 and np.ptp(differences) <= _RELATIVE_TOLERANCE * scale
  result = {
    "n": n,
    "treatment_mean": float(np.mean(treatment_array)),
    "baseline_mean": float(np.mean(baseline_array)),
    "difference": difference,
    "std": math.nan,
    "standard_error": math.nan,
    "confidence": confidence,
    "interval": None,
    "t": math.nan,
    "p_value": math.nan,
  }
  percent = f"{100 * confidence:g} %"
  mean = ("+" if difference > 0 else "") + _number(difference, digits)
  if n == 1:
    result["verdict"] = (
      f"one seed only: the difference is {mean}, with no interval (a {percent} interval needs "
      "two or more paired seeds)"
    )
    return result
  if no_spread:
    result.update(std=0.0, standard_error=0.0)
    if abs(difference) <= _RELATIVE_TOLERANCE * scale:
      result["difference"] = 0.0
      result["verdict"] = (
        f"all {n} paired differences are 0: no difference detected, and no spread to form a "
        f"{percent} interval from"
      )
    else:
      result.update(t=math.copysign(math.inf, difference), p_value=0.0)
      result["verdict"] = (
        f"all {n} paired differences equal {mean}: {subject} is "
        f"{'better' if difference > 0 else 'worse'} on every seed, but with no spread there is "
        f"no {percent} interval; run more seeds"
      )
    return result

  std = float(np.std(differences, ddof=1))
  standard_error = std / math.sqrt(n)
  t = difference / standard_error
  half_width = stats.t.ppf(0.5 + confidence / 2, df=n - 1) * standard_error
  low, high = difference - half_width, difference + half_width
  p_value = float(2 * stats.t.sf(abs(t), df=n - 1))
  result.update(
    std=std,
    standard_error=standard_error,
    interval=(float(low), float(high)),
    t=float(t),
    p_value=p_value,
  )
  interval = f"the {percent} interval [{_number(low, digits)}, {_number(high, digits)}]"
  tail = f"p = {p_value:.2g}, {n} paired seeds"
  if low <= 0 <= high:
    result["verdict"] = (
      f"{interval} includes 0: no difference detected at this size (mean difference {mean}, {tail})"
    )
  else:
    better = "better" if difference > 0 else "worse"
    result["verdict"] = (
      f"{interval} excludes 0: {subject} is {better} by {_number(abs(difference), digits)} ({tail})"
    )
  return result
