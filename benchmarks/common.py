"""What the benchmark scripts share: the repository on `sys.path`, interleaved timing, headers.

Importing this module puts the repository root on `sys.path`, so that scripts run as
`python benchmarks/NAME.py` can import `train` and `configs` (which are not installed).
"""

from __future__ import annotations

import datetime
import os
import pathlib
import platform
import statistics
import sys
import time
from collections.abc import Callable

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))


def time_interleaved(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
  """Median seconds per call of each thunk: one untimed warm-up call each, then round robin.

  Each thunk must block until its work is done (`jax.block_until_ready`). Round robin makes
  load from other processes on a shared machine hit every variant alike.
  """
  for call in calls.values():
    call()
  times = {name: [] for name in calls}
  for _ in range(repeats):
    for name, call in calls.items():
      start = time.perf_counter()
      call()
      times[name].append(time.perf_counter() - start)
  return {name: statistics.median(t) for name, t in times.items()}


def machine() -> str:
  """One line: date, jax version, device kind and CPU."""
  import jax

  return (
    f"{datetime.date.today()}  jax {jax.__version__}  {jax.devices()[0].device_kind}  "
    f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
  )


def table(header: list[str], align: str = "---:") -> str:
  """The first two lines of a markdown table."""
  return f"| {' | '.join(header)} |\n|{'|'.join([align] * len(header))}|"
