"""Every config file gives a valid config, the paper configs carry MosaicBERT's recipe, and the
GLUE suite config holds every task's."""

import importlib
import pathlib

import pytest

from configs import glue
from mobius_jax.models import ModelConfig
from train.core import checks, optim

# Every configs/*.py with a plain get_config(); glue.py's takes a task (tested below).
CONFIG_FILES = sorted(
  p.stem
  for p in (pathlib.Path(__file__).parents[2] / "configs").glob("*.py")
  if p.stem not in ("__init__", "glue")
)
PAPER = [name for name in CONFIG_FILES if name.endswith("_c4")]


def check(config):
  checks.check_config(config)
  ModelConfig.preset(config.model, **config.model_overrides.to_dict())
  optim.learning_rate_schedule(config)(0)


@pytest.fixture
def vocab_file(tmp_path):
  path = tmp_path / "vocab.txt"
  path.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
  return str(path)


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_config_files(name, vocab_file):
  config = importlib.import_module(f"configs.{name}").get_config()
  if name in PAPER:
    config.tokenizer.vocab_file = vocab_file
  check(config)


@pytest.mark.parametrize("name", PAPER)
def test_paper_configs_ask_for_their_vocabulary(name):
  config = importlib.import_module(f"configs.{name}").get_config()
  with pytest.raises(ValueError, match=r"needs config\.tokenizer\.vocab_file"):
    checks.check_config(config)


@pytest.mark.parametrize("task", glue.TASKS)
def test_glue_configs(task):
  config = glue.get_config(task)
  check(config)
  recipe = glue.TASKS[task]
  assert config.task == task and config.num_train_steps > 0
  decay = recipe.learning_rate if task == "rte" else recipe.learning_rate / 10
  assert config.optimizer.weight_decay == pytest.approx(decay)
  assert config.seed == glue.SEEDS[task][0]


def test_paper_configs_follow_the_mosaicbert_recipe():
  from configs import mobius_bert_base_c4

  config = mobius_bert_base_c4.get_config()
  assert (config.model, config.corpus, config.max_len) == ("mobius_bert-base", "c4", 128)
  assert (config.batch_size, config.num_train_steps, config.seed) == (4096, 70_000, 17)
  opt = config.optimizer
  assert (opt.learning_rate, opt.b1, opt.b2, opt.eps) == (5e-4, 0.9, 0.98, 1e-6)
  assert (opt.weight_decay, opt.weight_decay_scaling) == (1e-5, "schedule")
  assert (opt.grad_clip, opt.final_rate, opt.warmup_ratio) == (0.0, 0.02, 0.06)
  assert opt.no_decay == ("coefficients",) and config.mask_rate == 0.15
  assert config.model_overrides.attention_dropout == 0.0
  with pytest.raises(ValueError, match="no MosaicBERT GLUE recipe"):
    glue.get_config("wnli")


def test_the_suite_holds_every_tasks_config_its_seeds_and_the_mnli_starts():
  suite = glue.get_config("suite")
  assert tuple(suite.order) == tuple(glue.TASKS)
  assert tuple(suite.order) == ("mnli", "qqp", "qnli", "sst2", "cola", "rte", "mrpc", "stsb")
  assert tuple(suite.from_mnli) == glue.FROM_MNLI == ("rte", "mrpc", "stsb")
  assert {task: tuple(seeds) for task, seeds in suite.seeds.items()} == glue.SEEDS
  assert [len(suite.seeds[task]) for task in suite.order] == [1, 1, 1, 3, 4, 5, 5, 5]
  assert set(suite.tasks) == set(glue.TASKS)
  for task in suite.order:
    assert suite.tasks[task].to_dict() == glue.get_config(task).to_dict(), task
