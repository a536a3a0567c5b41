"""Every config file gives a valid config: known keys, a known model, task and schedule."""

import importlib
import pathlib

import pytest

from configs import glue
from mobius_jax.models import ModelConfig
from train import checks, optim, tasks

CONFIG_FILES = sorted(
  p.stem
  for p in (pathlib.Path(__file__).parents[2] / "configs").glob("*.py")
  if p.stem != "__init__"
)


def check(config):
  checks.check_config(config)
  ModelConfig.preset(config.model, **config.model_overrides.to_dict())
  optim.learning_rate_schedule(config)(0)


@pytest.mark.parametrize("name", [n for n in CONFIG_FILES if n != "glue"])
def test_config_files(name):
  check(importlib.import_module(f"configs.{name}").get_config())


@pytest.mark.parametrize("task", tasks.GLUE_TASKS)
def test_glue_configs(task):
  config = glue.get_config(task)
  check(config)
  assert config.task == task and config.num_train_steps > 0


def test_paper_configs_follow_the_mosaicbert_recipe():
  from configs import mobius_bert_base_c4

  config = mobius_bert_base_c4.get_config()
  assert (config.model, config.corpus, config.max_len) == ("mobius_bert-base", "c4", 128)
  assert (config.batch_size, config.num_train_steps) == (4096, 70_000)
  assert config.optimizer.learning_rate == 5e-4 and config.optimizer.b2 == 0.98
  with pytest.raises(ValueError, match="no GLUE task"):
    glue.get_config("polarity")
