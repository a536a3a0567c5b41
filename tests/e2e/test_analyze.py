"""The analysis of checkpoints of short runs (under `tfds.testing.mock_data`): the command
`python -m train.analyze`, and `train.studies.analysis.analyze` on a fine-tuning run."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
import tensorflow_datasets.text.c4  # registers c4 for the mock data
import tensorflow_datasets.text.glue

from tests.helpers import finetune_config, pretrain_config
from train.core import experiment, loop
from train.studies import analysis

ROOT = pathlib.Path(__file__).parents[2]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """Workdirs of a 2-step MöbiusBERT pretraining run and a 1-step fine-tuning run from it."""
  root = tmp_path_factory.mktemp("analyze")
  with pytest.MonkeyPatch.context() as patch, tfds.testing.mock_data(num_examples=48):
    patch.setenv("MOBIUS_JAX_DATA", str(root / "cache"))
    config = pretrain_config(model="mobius_bert-tiny", num_train_steps=2)
    loop.train_and_evaluate(config, root / "pretrain")
    config = finetune_config(model="mobius_bert-tiny", init_from=str(root / "pretrain"))
    loop.train_and_evaluate(config, root / "finetune")
    yield root


@pytest.fixture(autouse=True)
def mock_data(runs, monkeypatch):
  monkeypatch.setenv("MOBIUS_JAX_DATA", str(runs / "cache"))
  with tfds.testing.mock_data(num_examples=48):
    yield


def run_command(*args):
  """`python -m train.analyze ARGS` in a new process, with TFDS's mock data in place."""
  program = (
    "import runpy, sys, tensorflow_datasets as tfds, tensorflow_datasets.text.c4\n"
    "sys.argv = ['train.analyze', *sys.argv[1:]]\n"
    "with tfds.testing.mock_data(num_examples=48):\n"
    "  runpy.run_module('train.analyze', run_name='__main__', alter_sys=True)"
  )
  result = subprocess.run(
    [sys.executable, "-c", program, *args], cwd=ROOT, capture_output=True, text=True
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def test_command_writes_figures_and_reports(runs, tmp_path):
  stdout = run_command(f"--workdir={runs / 'pretrain'}", f"--out={tmp_path}", "--num_examples=8")
  assert "Learned Möbius maps" in stdout
  for name in ("type_shares.png", "map_images.png", "attention.png"):
    assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
  report = json.loads((tmp_path / "report.json").read_text())
  assert report["step"] == 2 and report["layer_kinds"] == "MM"
  # mobius_bert-tiny: 2 Möbius layers, each 1 Möbius head of 64 dims.
  layers = report["maps"]["layers"]
  assert [sum(layer["counts"].values()) for layer in layers] == [64, 64]
  assert report["attention"]["examples"] == 8
  assert set(report["attention"]["by_kind"]) == {"mobius", "complex"}
  markdown = (tmp_path / "report.md").read_text()
  assert "| 0 | all | 64 |" in markdown and "![attention](attention.png)" in markdown
  maps = np.load(tmp_path / "maps.npz")
  assert maps["layer1_a"].shape == (1, 64) and maps["layer1_type"].dtype == np.int32


def test_analysis_of_a_finetuning_run_at_a_given_step(runs, tmp_path):
  run = experiment.restore_run(runs / "finetune", step=1)
  report = analysis.analyze(run, tmp_path, num_examples=4)
  assert report["mode"] == "finetune" and report["step"] == 1
  assert report["attention"]["examples"] == 4
  assert (tmp_path / "report.md").exists()
