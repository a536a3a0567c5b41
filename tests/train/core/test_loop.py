"""The loop's own bookkeeping on short runs under `tfds.testing.mock_data`: a resumed run's
summary, one compilation per step function, and the errors it gives before any work.

Runs compared with runs (resume, mesh, accumulation…) are in tests/e2e/test_training.py.
"""

import jax
import pytest

from tests.helpers import (
  finetune_config,
  mock_data,  # noqa: F401  (autouse: TFDS's mock data for every test here)
  pretrain_config,
)
from train.core import loop


def test_a_resumed_runs_summary_holds_its_whole_curve(tmp_path):
  loop.train_and_evaluate(pretrain_config(num_train_steps=2), tmp_path)
  resumed = loop.train_and_evaluate(pretrain_config(num_train_steps=4), tmp_path)
  assert [entry["step"] for entry in resumed["train"]] == [1, 2, 3, 4]
  again = loop.train_and_evaluate(pretrain_config(num_train_steps=4), tmp_path)
  assert again["train"] == resumed["train"] and again["eval"] == resumed["eval"]
  # A call with nothing left to train keeps the run's step FLOPs and rate, adds its wall time.
  assert again["train_step_flops"] == resumed["train_step_flops"] > 0
  assert again["tokens_per_second"] == resumed["tokens_per_second"] > 0
  assert again["wall_time_seconds"] > resumed["wall_time_seconds"]
  # What a study reads back instead of calling the loop: the summary of the finished run, only
  # while the config is the run's own.
  assert loop.finished_summary(pretrain_config(num_train_steps=4), tmp_path) == again
  assert loop.finished_summary(pretrain_config(num_train_steps=5), tmp_path) is None
  changed_evaluation = pretrain_config(num_train_steps=4, eval_examples=8)
  assert loop.finished_summary(changed_evaluation, tmp_path) is None
  with pytest.raises(ValueError, match="another configuration"):
    loop.finished_summary(pretrain_config(num_train_steps=4, seed=1), tmp_path)
  assert loop.finished_summary(pretrain_config(num_train_steps=4), tmp_path / "none") is None


def test_the_loop_compiles_its_train_and_eval_steps_once(tmp_path, caplog):
  # A recompiling step (say, a Python scalar changing between steps) would cost a compilation
  # per step; logging, checkpointing and the eval batches must not trigger one either.
  config = pretrain_config(num_train_steps=5, log_every_steps=2, checkpoint_every_steps=2)
  with jax.log_compiles(), caplog.at_level("WARNING"):
    loop.train_and_evaluate(config, tmp_path / "run")
  compiled = [
    r.getMessage().split()[1] for r in caplog.records if "Compiling jit(" in r.getMessage()
  ]
  assert compiled.count("jit(train_step)") == 1, compiled
  assert compiled.count("jit(eval_step)") == 1, compiled


def test_unknown_config_keys_and_tasks_give_clear_errors(tmp_path):
  config = pretrain_config()
  config.num_train_step = 3
  with pytest.raises(ValueError, match=r"Unknown config key 'num_train_step'.*'num_train_steps'"):
    loop.train_and_evaluate(config, tmp_path / "a")
  with pytest.raises(ValueError, match=r"Unknown task 'glue_sst2'; known: \('cola'"):
    loop.train_and_evaluate(finetune_config(task="glue_sst2"), tmp_path / "b")


def test_an_unwritable_workdir_gives_a_clear_error(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("")
  with pytest.raises(PermissionError, match="Cannot write to the workdir"):
    loop.train_and_evaluate(pretrain_config(), blocker / "run")
