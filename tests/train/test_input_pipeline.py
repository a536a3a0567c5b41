"""Rows and batches: packing and truncation of pretraining rows, evaluation batches."""

import numpy as np

from train import input_pipeline
from train.tokenizer import PAD_ID

CLS, SEP = 2, 3


def test_pack_concatenates_and_cuts_full_rows_dropping_the_tail():
  rows = input_pipeline.pack([[10, 11, 12], [13], [14, 15, 16, 17, 18]], 5, CLS, SEP)
  # Bodies of 5 − 2 = 3 tokens from 10 … 18 (nine tokens): three full rows, nothing left over.
  np.testing.assert_array_equal(
    rows, [[CLS, 10, 11, 12, SEP], [CLS, 13, 14, 15, SEP], [CLS, 16, 17, 18, SEP]]
  )
  assert rows.dtype == np.int32
  tail = input_pipeline.pack([[10, 11, 12, 13]], 5, CLS, SEP)  # 13 does not fill a row
  np.testing.assert_array_equal(tail, [[CLS, 10, 11, 12, SEP]])
  assert input_pipeline.pack([[10]], 5, CLS, SEP).shape == (0, 5)


def test_truncate_keeps_each_list_in_its_own_padded_row():
  rows = input_pipeline.truncate([[10, 11, 12, 13, 14], [20], []], 5, CLS, SEP)
  np.testing.assert_array_equal(
    rows,
    [[CLS, 10, 11, 12, SEP], [CLS, 20, SEP, PAD_ID, PAD_ID], [CLS, SEP, PAD_ID, PAD_ID, PAD_ID]],
  )
  assert rows.dtype == np.int32


def test_eval_batches_hold_every_row_once_and_weigh_the_padding_zero():
  rows = {"input_ids": np.arange(7)[:, None] * np.ones((1, 3), int), "label": np.arange(7)}
  batches = list(input_pipeline.eval_batches(rows, 3))
  assert [len(b["label"]) for b in batches] == [3, 3, 3]  # fixed shape: one compilation
  weights = np.concatenate([b["weight"] for b in batches])
  np.testing.assert_array_equal(weights, [1, 1, 1, 1, 1, 1, 1, 0, 0])
  labels = np.concatenate([b["label"] for b in batches])[weights > 0]
  np.testing.assert_array_equal(labels, np.arange(7))
  np.testing.assert_array_equal(batches[-1]["input_ids"][0], [6, 6, 6])
