"""One run per workdir: `hold(workdir)`, held by `loop.train_and_evaluate` while a run runs.

Two runs in one workdir would write the same checkpoints at once and delete each other's steps.
Process 0 of a run takes the lock file `workdir/.run.lock` (a `train.locks` lock: host, process
id, since when, the command) for the whole run; the other processes of the same run (joined by
`jax.distributed`, same workdir) take nothing and learn process 0's outcome, so that they stop
with it rather than wait for it. A second run stops at once with `WorkdirInUseError`, naming the
holder and what to do. A lock whose process is gone (on this host) is taken over with a warning.
One held from another host is never taken over, as nothing here can tell whether that run still
runs: the error says how to remove it.
"""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import Iterator

import jax
import numpy as np
from jax.experimental import multihost_utils

from train import locks

__all__ = ["LOCK_NAME", "WorkdirInUseError", "hold", "lock_path"]

LOCK_NAME = ".run.lock"


class WorkdirInUseError(RuntimeError):
  """Another run holds the workdir."""


def lock_path(workdir: str | pathlib.Path) -> pathlib.Path:
  """The lock file of `workdir`."""
  return pathlib.Path(workdir) / LOCK_NAME


def _in_use(workdir: pathlib.Path, held: locks.LockHeldError) -> str:
  holder, path = held.holder, held.path
  if holder is None:
    return (
      f"The workdir {workdir} is in use by another run: its lock {path} was made "
      f"{locks.duration(held.age)} ago and cannot be read yet. Wait a minute and run the "
      "command again (an unreadable lock older than that is taken over), or pass another "
      "--workdir."
    )
  message = (
    f"The workdir {workdir} is in use by another run: {holder.describe()} (its lock: {path}). "
    "Only one run may use a workdir at a time. Wait for that run to finish, stop it "
  )
  if holder.on_this_host:  # and alive, else the lock would have been taken over
    return message + (
      f"(`kill {holder.pid}`: it saves a checkpoint and exits, and the same command resumes "
      "it), or pass another --workdir."
    )
  return message + (
    f"(`kill {holder.pid}` on {holder.host}: it saves a checkpoint and exits), or pass another "
    f"--workdir. If that run is gone (its host crashed or was shut down: a run refreshes its "
    f"lock every {locks.HEARTBEAT_SECONDS:.0f} s, and this one was last refreshed "
    f"{locks.duration(held.age)} ago), remove its lock and run the command again: rm {path}"
  )


def _agree(ok: bool) -> bool:
  """Process 0's `ok`, on every process."""
  if jax.process_count() == 1:
    return ok
  return bool(multihost_utils.broadcast_one_to_all(np.int32(ok)))


@contextlib.contextmanager
def hold(workdir: str | pathlib.Path) -> Iterator[None]:
  """Holds `workdir`'s lock (on process 0) while the block runs; released however it ends.

  Raises:
    WorkdirInUseError: another run holds it (on every process of this run).
  """
  workdir = pathlib.Path(workdir)
  lock, error = None, None
  if jax.process_index() == 0:
    try:
      lock = locks.acquire(
        lock_path(workdir), what=f"the workdir {workdir}", wait=False, stale_after=None
      )
    except locks.LockHeldError as held:
      error = WorkdirInUseError(_in_use(workdir, held))
    except Exception as failed:  # e.g. an unwritable workdir: the other processes stop too
      error = failed
  if not _agree(error is None):
    raise error or WorkdirInUseError(
      f"Process 0 of this run could not lock the workdir {workdir} (see its log): another run "
      "may be using it."
    )
  try:
    yield
  finally:
    if lock is not None:
      lock.release()
