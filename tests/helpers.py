"""What the tests that train share: small configs, TFDS's mock data (`mock_data`, an autouse
fixture where imported), a Hugging Face checkpoint folder, a checkpoint's parameters, losses."""

import json

import flax
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
import tensorflow_datasets as tfds
import tensorflow_datasets.text.c4  # registers the TFDS sets the mock data stands in for
import tensorflow_datasets.text.glue

from configs import default
from mobius_jax.models import MaskedLM, ModelConfig, hf
from train.data.tokenizer import SPECIAL_TOKENS


@pytest.fixture(autouse=True)
def mock_data(tmp_path, monkeypatch):
  """TFDS's mock data (48 rows a split) and an empty data cache, for every test of a module
  that imports this fixture."""
  monkeypatch.setenv("MOBIUS_JAX_DATA", str(tmp_path / "cache"))
  with tfds.testing.mock_data(num_examples=48):
    yield


def pretrain_config(**overrides):
  config = default.get_config()
  config.corpus = "c4"
  config.tokenizer.vocab_size = 200
  config.max_len = 32
  config.mask_rate = 0.15  # one evaluation (another rate adds one at 15 %)
  # The tests' own rate and dropout, whatever the main job's search chose for configs/default.
  config.optimizer.update(learning_rate=1e-3, warmup_ratio=0.06)
  config.model_overrides = ml_collections.ConfigDict()
  config.batch_size = 8
  config.eval_batch_size = 8
  config.eval_examples = 16
  config.num_train_steps = 1
  config.log_every_steps = 1
  config.checkpoint_every_steps = 1
  config.progress_bar = False
  config.mesh.update(data=1, fsdp=1, tensor=1)  # one device unless a test asks for more
  config.update(overrides)
  return config


def finetune_config(**overrides):
  config = default.finetune_config()
  config.task = "sst2"
  config.max_len = 32
  config.length_buckets = ()  # padded to max_len unless a test asks for buckets
  config.batch_size = 8
  config.eval_batch_size = 8
  config.num_train_steps = 1
  config.log_every_steps = 1
  config.progress_bar = False
  config.tokenizer.vocab_size = 200
  config.corpus = "c4"  # where a tokenizer is trained when none comes with init_from
  config.mesh.update(data=1, fsdp=1, tensor=1)
  config.update(overrides)
  return config


def losses(summary):
  return [entry["loss"] for entry in summary["train"]]


def hugging_face_checkpoint(directory):
  """A random BERT saved as a Hugging Face checkpoint: config.json, model.safetensors (PyTorch
  names, as `save_pretrained` writes them) and vocab.txt. Returns our parameters of it."""
  safetensors = pytest.importorskip("safetensors.numpy")
  letters = "abcdefghijklmnopqrstuvwxyz"
  words = ["the", "film", "good", "bad", *letters, *(f"##{c}" for c in letters)]
  vocab = [*SPECIAL_TOKENS, *words]
  config = ModelConfig.preset("bert-tiny", vocab_size=len(vocab), max_position_embeddings=64)
  params = MaskedLM(config).init(jax.random.PRNGKey(3), np.zeros((1, 8), np.int32))["params"]
  params = jax.tree.map(np.asarray, flax.linen.meta.unbox(params))
  directory.mkdir()
  (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
  (directory / "config.json").write_text(json.dumps(hf.config_to_hf(config)))
  safetensors.save_file(hf.params_to_hf(params, config), str(directory / "model.safetensors"))
  return params


def checkpoint_params(workdir, step):
  """The parameters saved in `workdir`'s checkpoint of `step`, as numpy arrays."""
  state = ocp.StandardCheckpointer().restore(workdir / "checkpoints" / str(step) / "state")
  return state["params"]
