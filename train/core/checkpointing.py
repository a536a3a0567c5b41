"""Checkpoints with orbax's `CheckpointManager`: the train state and the data position.

Each checkpoint holds two items: `state` (parameters, optimiser state, step, RNG key, as the
nested dict `flax.serialization.to_state_dict` makes of the train state) and `data` (the input
iterator's position, JSON). Saving is asynchronous; `close()` waits. The loop decides when to
save (and saves only finite states); this module only saves and restores.

A checkpoint that cannot be read (a truncated array file, a broken JSON item) does not stop a
run: the newest readable one is restored, with a warning naming each unreadable newer one.
"""

from __future__ import annotations

import logging
import os
import pathlib
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from train.core import partitioning

UNREADABLE_SUFFIX = ".unreadable"


class CheckpointMismatchError(ValueError):
  """A checkpoint whose arrays do not fit the configured model or optimiser."""


class CheckpointUnreadableError(RuntimeError):
  """No checkpoint in the folder can be read."""


class CheckpointWriteError(OSError):
  """A checkpoint could not be written (a full disk, a quota, an I/O error); the checkpoints
  saved before it are intact."""


def saved_steps(directory: str | pathlib.Path) -> list[int]:
  """The steps of the checkpoints in `directory` (without opening them), ascending."""
  directory = pathlib.Path(directory)
  if not directory.is_dir():
    return []
  return sorted(int(path.name) for path in directory.iterdir() if path.name.isdigit())


class Checkpointer:
  """Saves when asked, keeps the last `keep`, restores the newest readable checkpoint."""

  def __init__(self, directory: str | pathlib.Path, *, keep: int):
    self.directory = pathlib.Path(directory).absolute()
    self._last_saved = None
    self._manager = ocp.CheckpointManager(
      self.directory,
      item_handlers={
        "state": ocp.StandardCheckpointHandler(),
        "data": ocp.JsonCheckpointHandler(),
      },
      options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: dict, data_state: dict) -> bool:
    """Saves the state dict and data position at `step`, unless that step is saved already.

    Raises:
      CheckpointWriteError: the folder lacks the space a checkpoint needs (checked first, by
        every process alike), or orbax failed to write this or the previous checkpoint.
    """
    if step in (self._last_saved, self.latest_step()):
      return False
    self._check_space(step, state)
    try:
      self._manager.save(
        step,
        args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)
        ),
        force=True,
      )
    except Exception as error:  # orbax and tensorstore raise many kinds
      raise self._write_error(step, error) from error
    self._last_saved = step
    return True

  def _check_space(self, step: int, state: dict) -> None:
    """Refuses to start a save that cannot fit: before the first checkpoint, the state's
    arrays' bytes; after it, the newest checkpoint's size on disk."""
    free, needed = self._space(state)
    enough = free >= needed
    if jax.process_count() > 1:  # process 0's view decides, so that all processes agree
      enough = bool(multihost_utils.broadcast_one_to_all(np.asarray(enough)))
    if not enough:
      raise self._write_error(step, None, free=free, needed=needed)

  def _space(self, state: dict) -> tuple[int, int]:
    """(free bytes in the folder's filesystem, about what one more checkpoint needs)."""
    free = shutil.disk_usage(self.directory).free
    steps = saved_steps(self.directory)
    if steps:
      newest = self.directory / str(steps[-1])
      needed = sum(f.stat().st_size for f in newest.rglob("*") if f.is_file())
    else:
      needed = sum(getattr(leaf, "nbytes", 0) for leaf in jax.tree.leaves(state))
    return free, needed

  def _write_error(self, step, error, *, free=None, needed=None) -> CheckpointWriteError:
    if free is None:
      free, needed = self._space({})
    cause = f" ({type(error).__name__}: {str(error)[:300]})" if error is not None else ""
    return CheckpointWriteError(
      f"Cannot write the checkpoint of step {step} to {self.directory}{cause}: "
      f"{free / 2**20:.1f} MiB are free there, and a checkpoint needs about "
      f"{needed / 2**20:.1f} MiB. The checkpoints saved before are intact, and running the "
      "same command again resumes from the newest. Free some space, keep fewer checkpoints "
      "(--config.keep_checkpoints), or train into a --workdir on a larger disk."
    )

  def restore(self, abstract_state: dict, step: int | None = None, *, set_aside: bool = False):
    """(state dict, data_state, step) laid out as `abstract_state`.

    Args:
      abstract_state: the state dict's shapes, dtypes and shardings.
      step: the step to restore; default the newest readable one.
      set_aside: rename unreadable checkpoints newer than the one restored to
        `STEP.unreadable` (never deleted), so that a resumed run can save those steps again
        and orbax's clean-up never keeps them over good ones.

    Raises:
      CheckpointMismatchError: the checkpoint's arrays do not fit `abstract_state`.
      CheckpointUnreadableError: no checkpoint (or not `step`) can be read.
    """
    steps = sorted(self._manager.all_steps(), reverse=True) if step is None else [step]
    unreadable = []
    for candidate in steps:
      try:
        restored = self._restore(abstract_state, candidate)
      except CheckpointMismatchError:
        raise
      except Exception as error:  # orbax, tensorstore and json raise many kinds
        unreadable.append(candidate)
        logging.warning(
          "The checkpoint %s cannot be read (%s: %s); trying an older one.",
          self.directory / str(candidate),
          type(error).__name__,
          str(error)[:300],
        )
        continue
      if unreadable and set_aside:
        self._set_aside(unreadable)
      return restored["state"], restored["data"], candidate
    raise CheckpointUnreadableError(
      f"No checkpoint in {self.directory} can be read (steps {unreadable}; see the warnings). "
      "Restore them from a copy, or train into a new workdir."
    )

  def _restore(self, abstract_state: dict, step: int):
    saved = self._manager.item_metadata(step)["state"]
    _check_fits(saved, abstract_state, self.directory / str(step))
    return self._manager.restore(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()
      ),
    )

  def _set_aside(self, steps: list[int]) -> None:
    if jax.process_index() == 0:
      for step in steps:
        target = self.directory / f"{step}{UNREADABLE_SUFFIX}"
        os.replace(self.directory / str(step), target)
        logging.warning("Set the unreadable checkpoint aside as %s (not deleted).", target)
    partitioning.barrier("checkpoints set aside")
    self._manager.reload()

  def close(self) -> None:
    """Waits for the last save; raises `CheckpointWriteError` if it failed."""
    try:
      self._manager.wait_until_finished()
    except Exception as error:  # the asynchronous save's own error
      raise self._write_error(self._last_saved, error) from error
    finally:
      self._manager.close()


def _check_fits(saved, abstract_state, where: pathlib.Path) -> None:
  """Compares the trees leaf by leaf, so that a wrong config fails with the path that differs."""
  saved_leaves = dict(jax.tree_util.tree_flatten_with_path(saved)[0])
  wanted_leaves = dict(jax.tree_util.tree_flatten_with_path(abstract_state)[0])
  advice = "Use a new workdir, or the config the checkpoint was written with."
  for path, wanted in wanted_leaves.items():
    name = jax.tree_util.keystr(path)
    if path not in saved_leaves:
      raise CheckpointMismatchError(
        f"The checkpoint {where} has no {name}: it was written for another model or "
        f"optimiser. {advice}"
      )
    shape = tuple(getattr(saved_leaves[path], "shape", ()))
    if shape != tuple(wanted.shape):
      raise CheckpointMismatchError(
        f"The checkpoint {where} holds {name} of shape {shape}, the config asks for "
        f"{tuple(wanted.shape)}. {advice}"
      )
  extra = [jax.tree_util.keystr(path) for path in saved_leaves if path not in wanted_leaves]
  if extra:
    raise CheckpointMismatchError(
      f"The checkpoint {where} holds {extra[0]}, which the configured model and optimiser do "
      f"not have ({len(extra)} such arrays): it was written for another model. {advice}"
    )
