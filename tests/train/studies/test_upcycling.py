"""The upcycling study (`train.studies.upcycling`): variants parsed and configured, a study run
through the training loop from a hub folder (the frozen maps stay at the identity; called again,
it only reads), and its report's paired comparisons."""

import numpy as np
import pytest

from tests.helpers import (
  checkpoint_params,
  finetune_config,
  hugging_face_checkpoint,
  mock_data,  # noqa: F401  (autouse: TFDS's mock data for every test here)
)
from train.core import loop
from train.data import tasks
from train.studies import upcycling


def test_variants_parse_with_model_overrides_and_configure_the_fine_tuning():
  variant = upcycling.Variant.parse("upcycled_frozen+num_mobius_heads=2")
  config = variant.config(finetune_config(), "minilm", seed=3)
  assert (config.init_from, config.seed, config.upcycle_form) == ("minilm", 3, "preserving")
  assert tuple(config.optimizer.frozen) == ("query_mobius",)
  assert config.model_overrides.to_dict() == {"layout": "framed", "num_mobius_heads": 2}
  copied = upcycling.Variant.parse("upcycled_copied").config(finetune_config(), "minilm", 0)
  assert copied.upcycle_form == "copied" and not copied.optimizer.frozen
  checkpoint = upcycling.Variant.parse("checkpoint").config(finetune_config(), "minilm", 0)
  assert not checkpoint.model_overrides.to_dict()
  fast = upcycling.Variant.parse("upcycled_fast").config(finetune_config(), "minilm", 0)
  assert fast.optimizer.rate_multipliers == (("query_mobius", 100.0), ("imag_gate_*", 100.0))


@pytest.mark.parametrize(
  ("name", "message"),
  [
    ("mobius_bert-tiny", r"with --init_from, use variants of \('checkpoint', 'upcycled'"),
    ("upcycled+num_heads", r"write overrides as \+field=value"),
    ("upcycled+heads=2", r"ModelConfig has no field \['heads'\]"),
  ],
)
def test_bad_variants_are_refused_by_name(name, message):
  with pytest.raises(ValueError, match=message):
    upcycling.Variant.parse(name)


def test_a_study_from_a_hub_folder_trains_the_variants_and_freezes_the_maps(tmp_path, monkeypatch):
  hugging_face_checkpoint(tmp_path / "hf")
  config = finetune_config(num_train_steps=2)
  # upcycled_fast: its rate multipliers' names are the upcycled model's (refused otherwise).
  names = ["checkpoint", "upcycled_fast", "upcycled_frozen", "widened+intermediate_size=640"]
  variants = [upcycling.Variant.parse(name) for name in names]
  rows = upcycling.run_study(config, f"hf:{tmp_path / 'hf'}", variants, 1, tmp_path / "study")
  assert [row["model"] for row in rows] == names
  assert all(0.0 <= row["validation"] <= 1.0 for row in rows)
  checkpoint, upcycled, frozen, widened = (row["encoder_parameters"] for row in rows)
  assert upcycled == frozen and checkpoint < widened and checkpoint < upcycled

  def maps(variant):
    params = checkpoint_params(tmp_path / "study" / "seed0" / variant / "finetune", 2)
    return params["backbone"]["encoder"]["layer_0"]["attention"]["query_mobius"]["coefficients"]

  identity = np.zeros_like(maps("upcycled_frozen"))
  identity[0, 0], identity[3, 0] = 1.0 + 1e-4, 1.0  # preserving upcycling's start (mobius_eps)
  np.testing.assert_array_equal(maps("upcycled_frozen"), identity)
  assert not np.array_equal(maps("upcycled_fast"), identity)  # the same start's maps, trained

  def no_training_or_analysis(*args, **kwargs):
    raise AssertionError("a finished run was trained or analysed again")

  # Called again, the study reads its finished runs back: the same rows.
  monkeypatch.setattr(upcycling.analysis, "analyze", no_training_or_analysis)
  monkeypatch.setattr(loop.experiment, "build_experiment", no_training_or_analysis)
  again = upcycling.run_study(config, f"hf:{tmp_path / 'hf'}", variants, 1, tmp_path / "study")
  assert [row["validation"] for row in again] == [row["validation"] for row in rows]


def test_the_report_compares_each_variant_with_its_control_by_seed():
  def row(model, seed, validation):
    return {
      "model": model,
      "seed": seed,
      "encoder_parameters": 1e6,
      "validation": validation,
      "test": validation,
      "tokens_per_second": 100.0,
    }

  scores = {"checkpoint": (0.80, 0.82, 0.81), "upcycled": (0.83, 0.84, 0.85)}
  rows = [row(m, s, v) for m, values in scores.items() for s, v in enumerate(values)]
  text = upcycling.study_report(rows, tasks.get_task("polarity"), None)
  assert "| upcycled | 3 | 1.00M | 0.840 ± 0.010 |" in text
  line = next(ln for ln in text.splitlines() if ln.startswith("- upcycled − checkpoint, val"))
  assert "interval [" in line and "excludes 0: upcycled is better by 0.030" in line
  assert "upcycled_frozen" not in text  # a comparison needs both variants' rows
