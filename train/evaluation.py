"""Evaluation of a train state on whole splits: every row once, metrics on the host."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from train import input_pipeline, partitioning
from train.objectives import Objective


def evaluate(
  eval_step: Callable,
  state,
  rows: Mapping[str, np.ndarray],
  *,
  objective: Objective,
  batch_size: int,
  batch_sharding,
) -> dict[str, float]:
  """Loss and metrics of one split (`rows`: arrays `[N, ...]`), every row counted once.

  `eval_step(state, batch)` is the jitted `state.eval_step`; rows pad the last batch with
  weight 0, and only the rows of weight 1 count.
  """
  totals, predictions = {}, []
  for batch in input_pipeline.eval_batches(rows, batch_size):
    out = eval_step(state, partitioning.shard_batch(batch, batch_sharding))
    out = {key: np.asarray(value) for key, value in out.items()}
    if "predictions" in out:
      predictions.append(out.pop("predictions")[batch["weight"] > 0])
    for key, value in out.items():
      totals[key] = totals.get(key, 0.0) + float(value)
  if not predictions:
    return objective.summarize(totals)
  return objective.summarize(totals, np.concatenate(predictions), rows["label"])
