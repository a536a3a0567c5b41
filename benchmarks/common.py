"""What the benchmark scripts share: the repository on `sys.path`, interleaved timing, headers.

Importing this module puts the repository root on `sys.path`, so that scripts run as
`python benchmarks/NAME.py` can import `train` and `configs` (which are not installed).
Each script prints its tables with `train.markdown.table`, once its rows are measured.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from absl import app, flags, logging

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))


def start(argv: Sequence[str]) -> None:
  """What each script's `main(argv)` does first, once `app.run` has parsed the flags: no stray
  arguments; and absl's log at WARNING unless --verbosity is given (app.run would make it INFO,
  which prints jax's and the profiler's INFO lines)."""
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)


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


def progress(cells: Sequence[str]) -> None:
  """Prints a table row as soon as it is measured, as a comment line (`# a | b | c`); the
  table itself is printed once, at the end."""
  print("# " + " | ".join(cells), flush=True)
