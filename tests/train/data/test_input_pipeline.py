"""Rows and batches: packing and truncation of pretraining rows, streamed documents' leading
tokens, evaluation batches."""

import numpy as np

from train.data import input_pipeline
from train.data.tokenizer import PAD_ID, bert_tokenizer

CLS, SEP = 2, 3
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


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


def test_batches_are_cut_to_the_shortest_bucket_that_holds_their_longest_row():
  ids = np.zeros((6, 16), np.int32)
  for row, length in enumerate([3, 5, 9, 2, 16, 4]):
    ids[row, :length] = 7
  rows = {"input_ids": ids, "token_type_ids": ids * 0, "label": np.arange(6)}
  np.testing.assert_array_equal(input_pipeline.token_lengths(rows), [3, 5, 9, 2, 16, 4])
  assert input_pipeline.bucket_length(np.array([3, 5]), (8, 12)) == 8
  assert input_pipeline.bucket_length(np.array([3, 9]), (8, 12)) == 12
  assert input_pipeline.bucket_length(np.array([16]), (8, 12)) is None  # the full length
  batches = list(input_pipeline.eval_batches(rows, 2, buckets=(8, 12)))
  assert [b["input_ids"].shape[1] for b in batches] == [8, 12, 16]
  assert [b["token_type_ids"].shape[1] for b in batches] == [8, 12, 16]
  np.testing.assert_array_equal(batches[0]["input_ids"], ids[:2, :8])  # nothing real is cut
  dataset = input_pipeline.training_dataset(rows, 3, seed=0, buckets=(8, 12))
  for batch in (dataset[i] for i in range(4)):
    real = (batch["input_ids"] != PAD_ID).sum(axis=1)
    assert batch["input_ids"].shape[1] in (8, 12, 16) and real.max() <= batch["input_ids"].shape[1]
    assert batch["label"].shape == (3,)


def test_document_rows_hold_the_whole_documents_first_tokens():
  # Whatever the cut: texts far longer than a row, texts shorter than the cut, words longer
  # than the characters allowed per token (one [UNK] each), no space at all.
  words = ["the", "film", "moving", "story", "##s", "of", "a", "family", ",", "."]
  tok = bert_tokenizer({token: i for i, token in enumerate(SPECIALS + words)})
  rng = np.random.default_rng(0)
  choices = ["the", "films", "moving,", "of", "a", "family."]
  texts = [" ".join(rng.choice(choices, n)) for n in (3, 40, 400)]
  texts += ["x" * 300 + " the film", "the " + "y" * 5000, "story" * 60, "of a " * 500]
  # A word's prefix may tokenise ("film ##s …") where the whole word is [UNK]: no cut in a word.
  texts += ["film" + "s" * 40 + "x the film", "films" * 20 + " of", ""]
  for max_len in (3, 7, 32):
    whole = [tok.encode(text, add_special_tokens=False).ids for text in texts]
    expected = input_pipeline.truncate(whole, max_len, CLS, SEP)
    np.testing.assert_array_equal(input_pipeline.document_rows(tok, texts, max_len), expected)
