"""The GLUE suite's rules (`train.studies.glue_suite`): MosaicBERT's scores and average, the task
order, the suite checked before any run, each task's config, and the report.

The suite end to end on mock data, and its command, are in tests/e2e/test_glue.py.
"""

import pytest

from configs import glue as recipe
from train.studies import glue_suite as glue


@pytest.fixture(scope="module")
def suite():
  return recipe.get_config("suite")


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


def test_tasks_run_mnli_first_and_its_dependants_last(suite):
  assert glue.ordered(suite, ["stsb", "rte", "cola", "mnli", "sst2"]) == [
    "mnli",
    "sst2",
    "cola",
    "rte",
    "stsb",
  ]


def test_the_suite_is_checked_before_any_run(suite, tmp_path):
  glue.check_suite(suite, "hf:/models/bert", ["rte", "mnli"], {})
  with pytest.raises(ValueError, match=r"--tasks \['wnli'\]: MosaicBERT's GLUE suite is \('mnli'"):
    glue.check_suite(suite, "hf:/models/bert", ["rte", "wnli"], {})
  with pytest.raises(ValueError, match=r"^rte: config\.batch_size=0: use a positive integer"):
    glue.check_suite(suite, "hf:/models/bert", ["rte"], {"batch_size": 0})
  with pytest.raises(ValueError, match=r"--tasks \['wnli'\]"):
    glue.run_suite(suite, "hf:/models/bert", tmp_path, tasks=["wnli"])
  assert list(tmp_path.iterdir()) == []  # nothing ran, nothing was written


def test_a_task_config_takes_the_seed_start_and_overrides(suite):
  config = glue.task_config(suite, "rte", 8364, "hf:/models/bert", {"optimizer.eps": 1e-8})
  assert (config.task, config.seed, config.init_from) == ("rte", 8364, "hf:/models/bert")
  assert config.optimizer.eps == 1e-8
  assert config.optimizer.learning_rate == recipe.TASKS["rte"].learning_rate
  assert suite.tasks.rte.seed == recipe.SEEDS["rte"][0]  # the suite's config is not changed


def test_the_report_gives_each_tasks_metrics_and_the_average():
  result = {
    "tasks": {
      "rte": {
        "seeds": [1, 2],
        "metrics": {"validation/accuracy": [0.65, 0.05]},
        "score": 65.0,
      },
      "mrpc": {"seeds": [], "metrics": {"validation/accuracy": None}, "score": None},
    },
    "average": None,
  }
  text = glue.report(result, 8)
  assert "| rte | 2 | validation/accuracy 65.00 ± 5.00 | 65.00 |" in text.splitlines()
  assert "| mrpc | 0 |  | — |" in text.splitlines()
  assert "The suite is not complete" in text
  result.update(average=65.0, average_tasks=["rte"])
  assert "GLUE average (dev, 1 of MosaicBERT's 8 tasks (rte): not comparable" in glue.report(
    result, 8
  )
  result["average_tasks"] = list(recipe.TASKS)
  assert "GLUE average (dev, MosaicBERT's 8 tasks): **65.00**" in glue.report(result, 8)
