"""The experiment a config builds and the run a workdir restores: the evaluations it adds (masked
LM at 15 %), and a folder that holds no run."""

import pytest

from tests.helpers import (
  mock_data,  # noqa: F401  (autouse: TFDS's mock data for every test here)
  pretrain_config,
)
from train.core import experiment, loop


def test_masked_lm_accuracy_is_also_reported_at_15_percent(tmp_path):
  # MosaicBERT evaluates at 15 % whatever its training rate; so do we, beside the training rate.
  summary = loop.train_and_evaluate(pretrain_config(mask_rate=0.3), tmp_path / "run")
  assert set(summary["eval"]) == {"validation", "validation_mask0.15"}
  assert summary["eval"]["validation"] != summary["eval"]["validation_mask0.15"]


def test_a_folder_that_is_no_run_gives_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="no training workdir"):
    experiment.restore_run(tmp_path)
