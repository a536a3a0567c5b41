"""Evaluation of a train state on whole splits: every row once, metrics on the host."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from train.core import partitioning
from train.core.objectives import Objective
from train.data import input_pipeline


def evaluate(
  eval_step: Callable,
  state,
  rows: Mapping[str, np.ndarray],
  *,
  objective: Objective,
  batch_size: int,
  batch_sharding,
  buckets: tuple[int, ...] = (),
) -> dict[str, float]:
  """Loss and metrics of one split (`rows`: arrays `[N, ...]`), every row counted once.

  `eval_step(state, batch)` is the jitted `state.eval_step`, with replicated outputs: its sums
  cover the global batch, whose rows are spread over the processes, and every process gets all
  predictions. Rows pad the last batch with weight 0; only the rows of weight 1 count. With
  `buckets`, each batch is cut to a bucket length (see `input_pipeline.eval_batches`).
  """
  totals, predictions = {}, []
  for batch in input_pipeline.eval_batches(rows, batch_size, buckets):
    share = input_pipeline.process_share(batch)
    out = eval_step(state, partitioning.shard_batch(share, batch_sharding))
    out = {key: np.asarray(value) for key, value in out.items()}
    if "predictions" in out:
      predictions.append(out.pop("predictions")[batch["weight"] > 0])
    for key, value in out.items():
      totals[key] = totals.get(key, 0.0) + float(value)
  if not predictions:
    return objective.summarize(totals)
  return objective.summarize(totals, np.concatenate(predictions), rows["label"])
