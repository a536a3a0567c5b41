"""The GLUE suite (`train.glue`): MosaicBERT's average, and the suite end to end on mock data."""

import pathlib
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds
import tensorflow_datasets.text.c4
import tensorflow_datasets.text.glue

from configs import glue as recipe
from tests.train.runs import pretrain_config
from train import glue, loop

ROOT = pathlib.Path(__file__).parents[2]


def test_the_average_follows_mosaicberts_rules():
  runs = {
    "mnli": [
      {"validation_matched": {"accuracy": 0.84}, "validation_mismatched": {"accuracy": 0.85}}
    ],
    "qqp": [{"validation": {"accuracy": 0.90, "f1": 0.86}}],
    "stsb": [
      {"validation": {"spearman": 0.88, "pearson": 0.10}},
      {"validation": {"spearman": 0.86, "pearson": 0.10}},
    ],
    "rte": [{"validation": {"accuracy": a}} for a in (0.60, 0.70, 0.65)],
  }
  scores = {task: glue.task_score(task, r) for task, r in runs.items()}
  # By hand: MNLI (84 + 85) / 2; QQP (90 + 86) / 2; STS-B Spearman only, mean of 88 and 86;
  # RTE the mean over seeds.
  assert scores == pytest.approx({"mnli": 84.5, "qqp": 88.0, "stsb": 87.0, "rte": 65.0})
  assert glue.glue_average(scores) == pytest.approx((84.5 + 88.0 + 87.0 + 65.0) / 4)


def test_tasks_run_mnli_first_and_its_dependants_last():
  assert glue.ordered(["stsb", "rte", "cola", "mnli", "sst2"]) == [
    "mnli",
    "sst2",
    "cola",
    "rte",
    "stsb",
  ]


def test_overrides_are_python_literals_or_strings():
  assert glue.parse_overrides(["num_train_steps=3", "dtype=float32", "length_buckets=(8, 16)"]) == {
    "num_train_steps": 3,
    "dtype": "float32",
    "length_buckets": (8, 16),
  }
  with pytest.raises(ValueError, match="use KEY=VALUE"):
    glue.parse_overrides(["dtype"])


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
      str(tmp_path / "pretrain"),
      tmp_path / "glue",
      tasks=["rte", "mnli"],
      seeds=[19, 8364],
      overrides=TINY,
    )
  assert calls == [] and again["average"] == suite["average"]
  assert recipe.SEEDS["mnli"][0] == 19  # the chained tasks start from this seed's MNLI run
  # The command prints the table and the average.
  program = (
    "import sys\nfrom absl import app\nfrom train import glue\nglue.define_flags()\n"
    "app.run(glue.main, argv=['train.glue', *sys.argv[1:]])"
  )
  args = [
    f"--init_from={tmp_path / 'pretrain'}",
    f"--workdir={tmp_path / 'glue'}",
    "--tasks=mnli,rte",
  ]
  result = subprocess.run(
    [sys.executable, "-c", program, *args, "--seeds=19,8364"],
    cwd=ROOT,
    capture_output=True,
    text=True,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert "GLUE average (dev, 2 of MosaicBERT's 8 tasks (mnli, rte)" in result.stdout
  assert f"**{suite['average']:.2f}**" in result.stdout
