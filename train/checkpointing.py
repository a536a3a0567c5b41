"""Checkpoints with orbax's `CheckpointManager`: the train state and the data position.

Each checkpoint holds two items: `state` (parameters, optimiser state, step, RNG key, as the
nested dict `flax.serialization.to_state_dict` makes of the train state) and `data` (the input
iterator's position, JSON). Saving is asynchronous; `close()` waits.
"""

from __future__ import annotations

import pathlib

import jax
import orbax.checkpoint as ocp


class CheckpointMismatchError(ValueError):
  """A checkpoint whose arrays do not fit the configured model or optimiser."""


class Checkpointer:
  """Saves every `every_steps` steps (and when asked), keeps the last `keep`."""

  def __init__(self, directory: str | pathlib.Path, *, every_steps: int, keep: int):
    self.directory = pathlib.Path(directory).absolute()
    self._last_saved = None
    self._manager = ocp.CheckpointManager(
      self.directory,
      item_handlers={
        "state": ocp.StandardCheckpointHandler(),
        "data": ocp.JsonCheckpointHandler(),
      },
      options=ocp.CheckpointManagerOptions(
        save_interval_steps=every_steps, max_to_keep=keep, create=True
      ),
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: dict, data_state: dict, *, force: bool = False) -> bool:
    """Saves the state dict if `step` is due (or `force`); returns whether it did."""
    if step in (self._last_saved, self.latest_step()):
      return False
    saved = self._manager.save(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)
      ),
      force=force,
    )
    if saved:
      self._last_saved = step
    return saved

  def restore(self, abstract_state: dict, step: int | None = None):
    """(state dict, data_state) of `step` (default the latest), laid out as `abstract_state`.

    Raises:
      CheckpointMismatchError: the checkpoint's arrays do not fit `abstract_state`.
    """
    step = self.latest_step() if step is None else step
    saved = self._manager.item_metadata(step)["state"]
    _check_fits(saved, abstract_state, self.directory / str(step))
    restored = self._manager.restore(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()
      ),
    )
    return restored["state"], restored["data"]

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def _check_fits(saved, abstract_state, where: pathlib.Path) -> None:
  """Compares shapes leaf by leaf, so that a wrong config fails with the path that differs."""
  saved_leaves = dict(jax.tree_util.tree_flatten_with_path(saved)[0])
  wanted_leaves = jax.tree_util.tree_flatten_with_path(abstract_state)[0]
  for path, wanted in wanted_leaves:
    name = jax.tree_util.keystr(path)
    if path not in saved_leaves:
      raise CheckpointMismatchError(
        f"The checkpoint {where} has no {name}: it was written for another model or optimiser. "
        "Use a new workdir, or the config the checkpoint was written with."
      )
    shape = tuple(getattr(saved_leaves[path], "shape", ()))
    if shape != tuple(wanted.shape):
      raise CheckpointMismatchError(
        f"The checkpoint {where} holds {name} of shape {shape}, the config asks for "
        f"{tuple(wanted.shape)}. Use a new workdir, or the config the checkpoint was written with."
      )
