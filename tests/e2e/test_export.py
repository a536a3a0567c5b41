"""Training runs exported as transformers folders (`python -m train.export` and
`train.core.export.export_run`) and loaded in a new process without JAX by transformers' auto
classes, offline: a MöbiusBERT-tiny pretraining run (masked LM) and a MöbiusRoFormer-tiny
fine-tuning run (classifier), each trained for 2 steps under `tfds.testing.mock_data`."""

import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
import tensorflow_datasets.text.c4  # registers c4 for the mock data
import tensorflow_datasets.text.glue

from mobius_jax.models import Transformer, export
from tests.e2e.pytorch_process import start_pytorch
from tests.helpers import finetune_config, pretrain_config
from train.core import experiment, loop
from train.core.export import export_run

pytest.importorskip("torch")
pytest.importorskip("transformers")

ROOT = pathlib.Path(__file__).parents[2]
TOL = 1e-5
TEXT = "the film was good"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """Workdirs of a MöbiusBERT-tiny pretraining run and a MöbiusRoFormer-tiny fine-tuning run."""
  root = tmp_path_factory.mktemp("export")
  with pytest.MonkeyPatch.context() as patch, tfds.testing.mock_data(num_examples=48):
    patch.setenv("MOBIUS_JAX_DATA", str(root / "cache"))
    config = pretrain_config(model="mobius_bert-tiny", num_train_steps=2)
    loop.train_and_evaluate(config, root / "bert")
    config = finetune_config(model="mobius_roformer-tiny", num_train_steps=2)
    loop.train_and_evaluate(config, root / "roformer")
  return root


def export_command(*args):
  """`python -m train.export ARGS` in a new process."""
  result = subprocess.run(
    [sys.executable, "-m", "train.export", *args], cwd=ROOT, capture_output=True, text=True
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def batch(run: experiment.Run) -> dict:
  """A padded two-segment batch of the run's tokenizer: one pair, one single sentence."""
  pair, single = run.tokenizer.encode("the film", "was good"), run.tokenizer.encode("bad")
  length = len(pair.ids)
  ids, types, mask = (np.zeros((2, length), np.int64) for _ in range(3))
  for row, encoding in enumerate((pair, single)):
    n = len(encoding.ids)
    ids[row, :n], types[row, :n], mask[row, :n] = encoding.ids, encoding.type_ids, 1
  return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def our_outputs(run: experiment.Run, inputs: dict) -> dict:
  """The encoder's outputs and the run's head's, in one jitted function."""
  head = "mlm" if run.config.mode == "pretrain" else "classifier"
  backbone = Transformer(run.model_config, with_pooler="pooler" in run.params["backbone"])

  @jax.jit
  def apply(params, inputs):
    encoder = backbone.apply({"params": params["backbone"]}, **inputs)
    out = {"sequence": encoder.sequence, head: run.model.apply({"params": params}, **inputs)}
    return out if encoder.pooled is None else {**out, "pooled": encoder.pooled}

  return {k: np.asarray(v) for k, v in apply(run.params, inputs).items()}


def test_runs_export_and_load_in_pytorch_without_jax(runs, tmp_path):
  assert "Wrote" in export_command(f"--workdir={runs / 'bert'}", f"--out={tmp_path / 'bert'}")
  export_run(runs / "roformer", tmp_path / "roformer")
  restored = {name: experiment.restore_run(runs / name) for name in ("bert", "roformer")}
  jobs = [
    dict(
      folder=tmp_path / name,
      inputs=batch(run),
      pooled=False,  # the MLM run has no pooler (AutoModel draws one), RoFormer none at all
      text=TEXT,
      resave=tmp_path / "resaved" if name == "roformer" else None,
    )
    for name, run in restored.items()
  ]
  pytorch_outputs = start_pytorch(jobs, tmp_path)
  expected = {name: our_outputs(run, batch(run)) for name, run in restored.items()}
  theirs = dict(zip(restored, pytorch_outputs(), strict=True))
  for name, run in restored.items():
    out, ours = theirs[name], expected[name]
    np.testing.assert_array_equal(out.pop("token_ids"), run.tokenizer.encode(TEXT).ids)
    resaved = out.pop("resaved", None)
    assert set(ours) == set(out), name
    for key in ours:
      np.testing.assert_allclose(out[key], ours[key], atol=TOL, rtol=0, err_msg=f"{name} {key}")
  # The classifier, changed and saved by the PyTorch side: read back, and shareable again.
  assert (tmp_path / "resaved" / "modeling_mobius.py").is_file()
  config, params = export.load_pretrained(tmp_path / "resaved")
  assert config.layer_kinds == "MM" and config.family == "roformer"
  logits = restored["roformer"].model.apply({"params": params}, **batch(restored["roformer"]))
  np.testing.assert_allclose(np.asarray(logits), resaved, atol=TOL)


def test_the_folder_holds_the_tokenizer_and_a_model_card(runs, tmp_path):
  folder = export_run(runs / "bert", tmp_path / "bert")
  names = {path.name for path in folder.iterdir()}
  assert {"tokenizer.json", "tokenizer_config.json", "vocab.txt", "modeling_mobius.py"} <= names
  assert json.loads((folder / "tokenizer_config.json").read_text())["do_lower_case"] is True
  card = (folder / "README.md").read_text()
  summary = json.loads((runs / "bert" / "summary.json").read_text())
  accuracy = summary["eval"]["validation"]["accuracy"]
  assert "# mobius_bert-tiny, masked LM on c4" in card
  assert "| steps | 2 of 2 |" in card and "`MM`" in card
  assert f"| validation | accuracy | {accuracy:.4f} |" in card
  assert "arxiv.org/abs/2409.12175" in card and "trust_remote_code=True" in card
