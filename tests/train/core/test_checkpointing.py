"""Checkpoints: a save restores exactly; a checkpoint that does not fit names the leaf."""

import jax
import numpy as np
import pytest

from train.core.checkpointing import Checkpointer, CheckpointMismatchError


def state(width=3):
  return {"params": {"dense": {"kernel": np.arange(2 * width, dtype=np.float32).reshape(2, width)}}}


def abstract(tree):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)


def test_a_saved_state_and_data_position_restore_exactly(tmp_path):
  checkpointer = Checkpointer(tmp_path, keep=2)
  assert checkpointer.save(1, state(), {"position": 7})
  checkpointer.close()
  checkpointer = Checkpointer(tmp_path, keep=2)
  restored, data_state, step = checkpointer.restore(abstract(state()))
  checkpointer.close()
  np.testing.assert_array_equal(
    restored["params"]["dense"]["kernel"], state()["params"]["dense"]["kernel"]
  )
  assert data_state == {"position": 7} and step == 1


@pytest.mark.parametrize(
  ("wanted", "message"),
  [
    (
      state(width=4),
      r"holds \['params'\]\['dense'\]\['kernel'\] of shape \(2, 3\), the config asks for \(2, 4\)",
    ),
    (
      {"params": {"other": state()["params"]["dense"]}},
      r"has no \['params'\]\['other'\]\['kernel'\]",
    ),
  ],
)
def test_a_checkpoint_that_does_not_fit_names_the_leaf(tmp_path, wanted, message):
  checkpointer = Checkpointer(tmp_path, keep=2)
  checkpointer.save(1, state(), {})
  checkpointer.close()  # waits for the asynchronous save
  checkpointer = Checkpointer(tmp_path, keep=2)
  with pytest.raises(CheckpointMismatchError, match=message):
    checkpointer.restore(abstract(wanted))
  checkpointer.close()
