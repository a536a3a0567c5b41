"""The analysis report's Markdown (`train.studies.analysis.report_markdown`) on the hand-built
model whose every map is known (`tests/analysis/known_maps.py`).

`analyze` on real runs, and the command `python -m train.analyze`, are in
tests/e2e/test_analyze.py.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mobius_jax.analysis as mja
from mobius_jax.models import MaskedLM
from tests.analysis.known_maps import CONFIG, known_params
from train.studies import analysis


def report_of(params, config, figures):
  ids = np.array([[2, 7, 8, 9, 3, 0]], np.int32)
  mask = ids != 0
  weights = mja.model_attention_weights(params, config, ids, attention_mask=mask)
  attention = mja.attention_statistics(weights, mask, config)
  attention["examples"] = len(ids)
  return {
    "model": "mobius_bert-tiny",
    "mode": "finetune",
    "step": 7,
    "layer_kinds": config.layer_kinds,
    "maps": mja.map_report(params, config),
    "attention": attention,
    "figures": figures,
  }


@pytest.fixture(scope="module")
def params():
  return known_params()


def test_the_report_tables_the_map_types_per_layer_and_head(params):
  figures = {"type_shares": "type_shares.png", "attention": "attention.png"}
  text = analysis.report_markdown(report_of(params, CONFIG, figures))
  lines = text.splitlines()
  assert lines[:3] == [
    "# Analysis of mobius_bert-tiny (finetune, step 7)",
    "",
    "Layers: `MVM` (M Möbius, V vanilla).",
  ]
  # Only the types some map has; the shares of each layer, then of each head.
  assert (
    "| layer | head | maps | identity | parabolic | elliptic | hyperbolic | loxodromic |" in lines
  )
  assert "| 0 | all | 8 | 12.5% | 25.0% | 37.5% | 12.5% | 12.5% |" in lines
  assert "| 0 | 1 | 4 | 0.0% | 0.0% | 75.0% | 0.0% | 25.0% |" in lines
  assert "| 2 | 0 | 4 | 0.0% | 0.0% | 0.0% | 100.0% | 0.0% |" in lines
  assert "## Attention on 1 validation examples" in lines
  assert sum(line.startswith("| 1 | ") and "| vanilla |" in line for line in lines) == 4
  assert text.endswith("\n\n![type_shares](type_shares.png)\n![attention](attention.png)\n")


def test_a_model_without_mobius_heads_says_so():
  config = dataclasses.replace(CONFIG, layout="none")
  variables = MaskedLM(config).init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))
  params = jax.tree.map(np.asarray, nn.meta.unbox(variables["params"]))
  text = analysis.report_markdown(report_of(params, config, {"attention": "attention.png"}))
  assert "The model has no Möbius heads: no maps to analyse." in text
  assert "Determinants" not in text and "| vanilla | 12 |" in text
