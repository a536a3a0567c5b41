"""The objectives: BERT's masking of ordinary tokens, and the masked-LM accuracy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mobius_jax.models import MaskedLM, ModelConfig
from train.core import objectives


def test_bert_masking_chooses_ordinary_tokens_at_the_rate_and_replaces_them_80_10_10():
  # A vocabulary laid out like bert-base-uncased's: specials and [unusedN] are ids 0 … 998.
  length, vocab_size, mask_id, special = 128, 1794, 103, tuple(range(999))
  rng = np.random.default_rng(0)
  ids = rng.integers(0, vocab_size, (64, length))  # specials anywhere, [unusedN] included
  ids[:, 0], ids[:32, 100:] = 101, 0  # [CLS] first; half the rows padded after 100 tokens
  p = objectives.max_predictions(0.15, length)
  assert p == 20 and objectives.max_predictions(0.15, 512) == 78  # ⌈0.15 L⌉, rounded up to even
  masked, positions, labels, weights = jax.device_get(
    objectives.mask_tokens(
      jax.random.key(0),
      jax.numpy.asarray(ids),
      rate=0.15,
      max_predictions=p,
      mask_id=mask_id,
      special_ids=special,
      vocab_size=vocab_size,
    )
  )
  ordinary = ids >= 999
  np.testing.assert_array_equal(weights.sum(axis=1), np.round(0.15 * ordinary.sum(axis=1)))
  chosen = positions[weights > 0]
  rows = np.nonzero(weights > 0)[0]
  assert ordinary[rows, chosen].all()  # never [PAD], [CLS], [SEP], [UNK], [MASK] or [unusedN]
  np.testing.assert_array_equal(labels, np.take_along_axis(ids, positions, axis=1))
  new = masked[rows, chosen]
  shares = [np.mean(new == mask_id), np.mean(new == labels[weights > 0])]
  assert 0.75 < shares[0] < 0.85 and 0.07 < shares[1] < 0.14, shares
  replaced = new[(new != mask_id) & (new != labels[weights > 0])]
  assert len(replaced) > 30 and (replaced >= 999).all()  # random draws are ordinary tokens
  unchosen = np.ones_like(ids, bool)
  unchosen[rows, chosen] = False
  np.testing.assert_array_equal(masked[unchosen], ids[unchosen])


def test_masked_lm_accuracy_counts_the_masked_tokens_whose_label_has_the_largest_logit():
  logits = jax.random.normal(jax.random.key(0), (4, 6, 50))
  labels = jax.random.randint(jax.random.key(1), (4, 6), 0, 50)
  labels = labels.at[:2].set(jax.numpy.argmax(logits[:2], -1))  # rows 0 and 1: all right
  weights = jax.numpy.ones((4, 6)).at[1, 3:].set(0.0)  # three of row 1's do not count

  class FixedLogits:  # stands in for the model: these logits, whatever the input
    def apply(self, variables, *args, **kwargs):
      return logits

  batch = {"input_ids": jax.numpy.ones((4, 8), int), "positions": None}
  objective = objectives.MaskedLMObjective(FixedLogits(), masking={})
  _, sums = objective.loss({}, {**batch, "labels": labels, "weights": weights}, None, train=False)
  expected = ((np.argmax(logits, -1) == labels) * weights).sum()
  assert 9 <= expected < 12 and float(sums["correct"]) == expected and sums["count"] == 21


@pytest.mark.parametrize("preset", ["bert-tiny", "mobius_bert-tiny"])
def test_the_masked_lm_loss_is_unchanged_by_extra_padding_columns(preset):
  # The model sees the padding mask: more [PAD] columns after the rows change nothing (the
  # offline rows are packed, C4's are mostly padding).
  model = MaskedLM(ModelConfig.preset(preset, vocab_size=64))
  ids = jax.random.randint(jax.random.key(0), (4, 12), 5, 64).at[:, 0].set(2)
  ids = ids.at[1, 8:].set(0).at[3, 5:].set(0)
  params = model.init(jax.random.key(1), ids)["params"]
  masking = dict(
    rate=0.15,
    max_predictions=objectives.max_predictions(0.15, 12),
    mask_id=4,
    special_ids=(0, 1, 2, 3, 4),
    vocab_size=64,
  )
  objective = objectives.MaskedLMObjective(model, masking)
  batch = objective.prepare({"input_ids": ids}, jax.random.key(2))
  padded = {**batch, "input_ids": jnp.pad(batch["input_ids"], ((0, 0), (0, 6)))}
  rng = jax.random.key(3)
  loss, sums = objective.loss(params, batch, rng, train=False)
  padded_loss, padded_sums = objective.loss(params, padded, rng, train=False)
  assert float(sums["count"]) == float(padded_sums["count"]) > 0
  np.testing.assert_allclose(padded_loss, loss, rtol=1e-5)
  np.testing.assert_allclose(padded_sums["correct"], sums["correct"])
