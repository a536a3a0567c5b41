"""The largest value that fits, by probes that each cost a compile: `largest_fitting`."""

from __future__ import annotations

from collections.abc import Callable


def largest_fitting(
  probe: Callable[[int], tuple[bool, float | None]],
  unit: int,
  start: int,
  *,
  limit: int | None = None,
  capacity: float | None = None,
) -> tuple[int | None, list[tuple[int, bool]]]:
  """The largest multiple of `unit` that fits, by a search that brackets it, then bisects.

  `probe(value)` says whether `value` fits and, if it does, the memory it takes (or None). The
  search assumes that a smaller value fits whenever a larger one does. From `start` (a multiple
  of `unit`) it doubles while it fits (up to `limit`) or halves while it does not. With
  `capacity` (the memory available) and two fitting probes, it first tries the value that the
  line through them predicts to fill `capacity`, then steps from there by `unit`, 2 `unit`,
  4 `unit`, …: where memory grows linearly with the value, the answer takes about four probes
  instead of a dozen. Then it bisects the bracket.

  Returns:
    (the largest multiple of `unit` that fits, None if not even `unit` does; the (value, fits)
    probes in order). At `limit`, the search stops there.
  """
  if start % unit or start <= 0:
    raise ValueError(f"start={start} must be a positive multiple of unit={unit}.")
  if limit is not None:
    limit = max(limit // unit, 1) * unit
    start = min(start, limit)
  probes, points = [], []  # (value, fits); (value, memory) of fitting probes

  def test(value: int) -> bool:
    ok, memory = probe(value)
    probes.append((value, ok))
    if ok and memory is not None:
      points.append((value, memory))
    return ok

  def predicted() -> int | None:
    """The largest multiple of `unit` the line through the two largest fits puts in capacity."""
    if capacity is None or len(points) < 2:
      return None
    (x0, y0), (x1, y1) = sorted(points)[-2:]
    if x1 == x0 or y1 <= y0:
      return None
    value = x1 + (capacity - y1) * (x1 - x0) / (y1 - y0)
    return int(value // unit) * unit

  good, bad = (start, None) if test(start) else (None, start)
  if good is not None and capacity is not None and (limit is None or good < limit):
    value = 2 * good if limit is None else min(2 * good, limit)
    good, bad = (value, None) if test(value) else (good, value)
  guess = predicted()
  if guess is not None and limit is not None:
    guess = min(guess, limit)
  if guess is not None and good is not None and guess > good and (bad is None or guess < bad):
    good, bad = _bracket_around(test, guess, good, bad, unit, limit)
    if bad is None:
      return good, probes
  while bad is None:  # doubling
    if limit is not None and good >= limit:
      return good, probes
    value = 2 * good if limit is None else min(2 * good, limit)
    good, bad = (value, None) if test(value) else (good, value)
  while good is None:  # halving
    if bad == unit:
      return None, probes
    value = max(unit, (bad // 2) // unit * unit)
    good, bad = (value, bad) if test(value) else (None, value)
  while bad - good > unit:
    middle = (good + bad) // 2 // unit * unit
    if test(middle):
      good = middle
    else:
      bad = middle
  return good, probes


def _bracket_around(test, guess: int, good: int, bad: int | None, unit: int, limit: int | None):
  """(good, bad) around a predicted `guess`: steps away from it by unit, 2 unit, 4 unit, …
  until the answer is bracketed (bad None: everything up to `limit` fits)."""
  step = unit
  if test(guess):
    good = guess
    while bad is None and (limit is None or good < limit):
      value = good + step if limit is None else min(good + step, limit)
      good, bad, step = (value, None, 2 * step) if test(value) else (good, value, step)
    return good, bad
  bad = guess
  while bad - good > unit:
    value = max(good + unit, bad - step)
    if test(value):
      return value, bad
    bad, step = value, 2 * step
  return good, bad
