"""Fine-tuning through the training loop from a hub folder that has tokenizer.json only, as a
vanilla model and upcycled with `upcycle_form="preserving"`."""

import numpy as np
import pytest

from tests.helpers import (
  finetune_config,
  hugging_face_checkpoint,
  losses,
  mock_data,  # noqa: F401  (autouse: TFDS's mock data for every test here)
)
from tests.models.test_hf_folders import as_tokenizer_json
from train.core import experiment, loop


@pytest.mark.parametrize(("layout", "form"), [("none", "copied"), ("framed", "preserving")])
def test_finetuning_from_a_folder_with_tokenizer_json_only(tmp_path, layout, form):
  hugging_face_checkpoint(tmp_path / "hf")
  as_tokenizer_json(tmp_path / "hf")
  config = finetune_config(init_from=f"hf:{tmp_path / 'hf'}", upcycle_form=form)
  config.model_overrides.layout = layout
  summary = loop.train_and_evaluate(config, tmp_path / "run")
  assert summary["status"] == "completed" and np.isfinite(losses(summary)[0])
  run = experiment.restore_run(tmp_path / "run")
  assert run.model_config.layer_kinds == {"none": "VV", "framed": "MM"}[layout]
  # The run's tokenizer is the folder's (same vocabulary), without its truncation at 8.
  assert (
    run.tokenizer.get_vocab()
    == experiment.tokenizer.read_tokenizer(tmp_path / "hf" / "tokenizer.json").get_vocab()
  )
  assert len(run.tokenizer.encode(" ".join(["film"] * 20)).ids) == 22
  if form == "preserving":
    assert run.model_config.mobius_imag_gate and run.model_config.mobius_query == "linear"
