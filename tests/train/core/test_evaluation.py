"""`evaluation.evaluate`: every validation row is scored once, padded rows count for nothing."""

import numpy as np

from tests.helpers import (
  mock_data,  # noqa: F401  (autouse: TFDS's mock data for every test here)
  pretrain_config,
)
from train.core import evaluation, experiment, loop, objectives
from train.data import input_pipeline, tasks
from train.data.tokenizer import SPECIAL_TOKENS


def test_pretraining_evaluation_scores_every_row_once(tmp_path, monkeypatch):
  # 12 validation rows in batches of 8: the second batch has 4 padded rows, which must add no
  # masked token to the count (they are copies of row 0).
  config = pretrain_config(eval_examples=12, eval_batch_size=8)
  counted, evaluate = [], evaluation.evaluate

  def spy(eval_step, *args, **kwargs):
    def counting(state, batch):
      out = eval_step(state, batch)
      counted.append(float(out["count"]))
      return out

    return evaluate(counting, *args, **kwargs)

  monkeypatch.setattr(evaluation, "evaluate", spy)
  loop.train_and_evaluate(config, tmp_path / "run")
  tok = experiment.restore_run(tmp_path / "run").tokenizer
  rows = input_pipeline.pretraining_data(config, tasks.get_corpus("c4"), tok).eval_splits
  ordinary = (rows["validation"]["input_ids"] >= len(SPECIAL_TOKENS)).sum(axis=1)
  cap = objectives.max_predictions(config.mask_rate, config.max_len)
  assert len(ordinary) == 12 and len(counted) == 2
  assert sum(counted) == np.minimum(np.round(config.mask_rate * ordinary), cap).sum()
