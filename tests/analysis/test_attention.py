"""`mobius_jax.analysis.attention`: head kinds, a model's attention weights, their statistics."""

import dataclasses

import numpy as np
import pytest

import mobius_jax.analysis as mja
from tests.analysis.known_maps import CONFIG


def test_head_kinds_follow_the_layout():
  assert mja.head_kinds(CONFIG) == [
    ["mobius", "mobius", "complex", "complex"],
    ["vanilla"] * 4,
    ["mobius", "mobius", "complex", "complex"],
  ]


def test_model_attention_weights_are_distributions_over_real_keys(params):
  ids = np.array([[2, 7, 8, 9, 3, 0], [2, 5, 3, 0, 0, 0]], np.int32)
  mask = ids != 0
  weights = mja.model_attention_weights(params, CONFIG, ids, attention_mask=mask)
  assert len(weights) == 3
  for w in weights:
    assert w.shape == (2, 4, 6, 6)
    np.testing.assert_allclose(w.sum(-1), 1, rtol=1e-5)
    assert np.all(w[1, :, :, 3:] < 1e-6)  # padded keys get no weight


def test_attention_statistics_of_uniform_and_one_hot_heads():
  config = dataclasses.replace(CONFIG, num_layers=1, layout="M")
  mask = np.array([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
  w = np.zeros((2, 4, 5, 5))
  for b, n in enumerate(mask.sum(1)):
    w[b, 0, :, :n] = 1 / n  # head 0: uniform over the real keys
    w[b, 1:, :, 0] = 1.0  # heads 1-3: all weight on the first token
  stats = mja.attention_statistics([w], mask, config)
  by_head = {h["head"]: h for h in stats["heads"]}
  assert by_head[0]["normalized_entropy"] == pytest.approx(1.0)
  assert by_head[0]["entropy"] == pytest.approx((4 * np.log(4) + 2 * np.log(2)) / 6)
  assert by_head[0]["near_zero_share"] == 0.0
  assert by_head[1]["entropy"] == 0.0
  # Of the 16 + 4 real pairs, all but one per query (4 + 2) are zero.
  assert by_head[1]["near_zero_share"] == pytest.approx(14 / 20)
  assert stats["by_kind"]["mobius"]["heads"] == 2
  assert stats["by_kind"]["mobius"]["near_zero_share"] == pytest.approx(7 / 20)
  assert stats["by_kind"]["complex"]["entropy"] == 0.0
