"""The config schema (`train.core.config.defaults()`): configs/default.py's configs hold exactly
its keys, and a key outside it is refused."""

import ml_collections
import pytest

from configs import default
from train.core import checks
from train.core import config as schema


def keys(config: ml_collections.ConfigDict, prefix: str = "") -> set[str]:
  """Every key, nested ones as "a.b"; the free-form dicts (model_overrides) as one key."""
  found = set()
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict) and key not in checks.FREE_FORM:
      found |= keys(value, f"{prefix}{key}.")
    else:
      found.add(f"{prefix}{key}")
  return found


@pytest.mark.parametrize("mode", ["pretrain", "finetune"])
def test_the_default_configs_have_exactly_the_schemas_keys(mode):
  config = default.get_config(mode)
  assert keys(config) == keys(schema.defaults())
  checks.check_config(config)


def test_the_schemas_defaults_are_a_valid_config_and_a_new_one_each_call():
  config = schema.defaults()
  checks.check_config(config)
  config.optimizer.learning_rate = 0.5
  assert schema.defaults().optimizer.learning_rate == 1e-3
  assert {"mode", "model", "optimizer.learning_rate", "mesh.data", "model_overrides"} <= keys(
    config
  )


@pytest.mark.parametrize(
  ("key", "message"),
  [
    ("num_train_step", r"Unknown config key 'num_train_step'\. Did you mean 'num_train_steps'\?"),
    (
      "optimizer.learning_rat",
      r"'optimizer\.learning_rat'\. Did you mean 'optimizer\.learning_rate'\?",
    ),
    (
      "mesh.pipeline",
      r"Unknown config key 'mesh\.pipeline'\. The keys are in train/core/config\.py",
    ),
  ],
)
def test_check_config_refuses_a_key_outside_the_schema(key, message):
  config = default.get_config()
  *parents, name = key.split(".")
  node = config
  for parent in parents:
    node = node[parent]
  node[name] = 3
  with pytest.raises(ValueError, match=message):
    checks.check_config(config)


def test_model_overrides_are_free_form():
  config = default.get_config()
  config.model_overrides.num_mobius_heads = 1  # a ModelConfig field, not a schema key
  checks.check_config(config)
