"""The GLUE suite end to end on mock data: `glue_suite.run_suite` chains RTE to MNLI, resumes
and averages; the command `python -m train.glue` prints the table and the average.

The suite's rules (scores, order, task configs, report) are tested in
tests/train/studies/test_glue_suite.py.
"""

import pathlib
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds
import tensorflow_datasets.text.c4
import tensorflow_datasets.text.glue

from configs import glue as recipe
from tests.helpers import pretrain_config
from train.core import loop
from train.studies import glue_suite as glue

ROOT = pathlib.Path(__file__).parents[2]


TINY = {
  "num_train_steps": 2,
  "max_len": 32,
  "length_buckets": (16, 32),
  "batch_size": 8,
  "eval_batch_size": 8,
  "dtype": "float32",
  "log_every_steps": 1,
  "progress_bar": False,
  "mesh.data": 1,
}


def test_the_suite_runs_chains_rte_to_mnli_resumes_and_averages(tmp_path, monkeypatch):
  monkeypatch.setenv("MOBIUS_JAX_DATA", str(tmp_path / "cache"))
  with tfds.testing.mock_data(num_examples=48):
    loop.train_and_evaluate(pretrain_config(), tmp_path / "pretrain")
    suite = glue.run_suite(
      recipe.get_config("suite"),
      str(tmp_path / "pretrain"),
      tmp_path / "glue",
      tasks=["rte", "mnli"],
      seeds=[19, 8364],
      overrides=TINY,
    )
    assert suite["complete"] and list(suite["tasks"]) == ["mnli", "rte"]
    assert suite["tasks"]["mnli"]["start"] == str(tmp_path / "pretrain")
    assert suite["tasks"]["rte"]["start"] == str(tmp_path / "glue" / "mnli" / "seed19")
    assert suite["tasks"]["rte"]["seeds"] == [19, 8364]
    expected = {
      task: glue.task_score(task, list(r["runs"].values())) for task, r in suite["tasks"].items()
    }
    assert suite["average"] == pytest.approx(glue.glue_average(expected))
    assert (
      "GLUE average (dev, 2 of MosaicBERT's 8 tasks (mnli, rte)"
      in (tmp_path / "glue" / "glue.md").read_text()
    )
    # A second call trains nothing: every run is finished.
    calls = []
    monkeypatch.setattr(loop, "train_and_evaluate", lambda *args: calls.append(args))
    again = glue.run_suite(
      recipe.get_config("suite"),
      str(tmp_path / "pretrain"),
      tmp_path / "glue",
      tasks=["rte", "mnli"],
      seeds=[19, 8364],
      overrides=TINY,
    )
  assert calls == [] and again["average"] == suite["average"]
  assert recipe.SEEDS["mnli"][0] == 19  # the chained tasks start from this seed's MNLI run
  # The command prints the table and the average.
  args = [
    f"--init_from={tmp_path / 'pretrain'}",
    f"--workdir={tmp_path / 'glue'}",
    "--tasks=mnli,rte",
  ]
  result = subprocess.run(
    [sys.executable, "-m", "train.glue", *args, "--seeds=19,8364"],
    cwd=ROOT,
    capture_output=True,
    text=True,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert "GLUE average (dev, 2 of MosaicBERT's 8 tasks (mnli, rte)" in result.stdout
  assert f"**{suite['average']:.2f}**" in result.stdout
