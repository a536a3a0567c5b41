"""The training loop under `tfds.testing.mock_data`: steps, sharding, resume, bad input."""

import json
import os
import signal

import flax
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
import tensorflow_datasets as tfds
import tensorflow_datasets.text.c4
import tensorflow_datasets.text.glue

from configs import default
from mobius_jax.models import MaskedLM, ModelConfig, hf
from train import experiment, loop, objectives, partitioning
from train.checkpointing import CheckpointMismatchError
from train.tokenizer import SPECIAL_TOKENS


@pytest.fixture(autouse=True)
def mock_data(tmp_path, monkeypatch):
  monkeypatch.setenv("MOBIUS_JAX_DATA", str(tmp_path / "cache"))
  with tfds.testing.mock_data(num_examples=48):
    yield


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
  """A one-step pretraining run's workdir, shared by the fine-tuning tests."""
  workdir = tmp_path_factory.mktemp("pretrained")
  with pytest.MonkeyPatch.context() as patch, tfds.testing.mock_data(num_examples=48):
    patch.setenv("MOBIUS_JAX_DATA", str(workdir / "cache"))
    loop.train_and_evaluate(pretrain_config(), workdir / "run")
  return workdir / "run"


def pretrain_config(**overrides):
  config = default.get_config()
  config.corpus = "c4"
  config.tokenizer.vocab_size = 200
  config.max_len = 32
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


# ------------------------------------------------------------------------------- masking


def test_bert_masking_chooses_ordinary_tokens_at_the_rate_and_replaces_them_80_10_10():
  length, num_special, vocab_size, mask_id = 128, 5, 1000, 4
  rng = np.random.default_rng(0)
  ids = rng.integers(num_special, vocab_size, (64, length))
  ids[:, 0], ids[:32, 100:] = 2, 0  # [CLS] first; half the rows padded after 100 tokens
  p = objectives.max_predictions(0.15, length)
  assert p == 20 and objectives.max_predictions(0.15, 512) == 78  # ⌈0.15 L⌉, rounded up to even
  masked, positions, labels, weights = jax.device_get(
    objectives.mask_tokens(
      jax.random.key(0),
      jax.numpy.asarray(ids),
      rate=0.15,
      max_predictions=p,
      mask_id=mask_id,
      vocab_size=vocab_size,
      num_special=num_special,
    )
  )
  eligible = (ids >= num_special).sum(axis=1)
  np.testing.assert_array_equal(weights.sum(axis=1), np.round(0.15 * eligible))
  chosen = positions[weights > 0]
  rows = np.nonzero(weights > 0)[0]
  assert (ids[rows, chosen] >= num_special).all()  # never [CLS] or [PAD]
  np.testing.assert_array_equal(labels, np.take_along_axis(ids, positions, axis=1))
  new = masked[rows, chosen]
  shares = [np.mean(new == mask_id), np.mean(new == labels[weights > 0])]
  assert 0.75 < shares[0] < 0.85 and 0.07 < shares[1] < 0.14, shares
  unchosen = np.ones_like(ids, bool)
  unchosen[rows, chosen] = False
  np.testing.assert_array_equal(masked[unchosen], ids[unchosen])


# ------------------------------------------------------------------------------- one step


@pytest.mark.parametrize("model", ["bert-tiny", "mobius_bert-tiny"])
def test_one_pretraining_step(tmp_path, model):
  summary = loop.train_and_evaluate(pretrain_config(model=model), tmp_path / "run")
  assert summary["status"] == "completed" and summary["step"] == 1
  assert np.isfinite(losses(summary)[0]) and losses(summary)[0] > 0
  assert 0.0 <= summary["eval"]["validation"]["accuracy"] <= 1.0
  assert (tmp_path / "run" / "checkpoints" / "1").is_dir()
  assert (tmp_path / "run" / "summary.json").exists()


@pytest.mark.parametrize("task", ["sst2", "stsb", "mnli"])
def test_one_finetuning_step_from_a_pretraining_run(tmp_path, pretrained, task):
  config = finetune_config(task=task, init_from=str(pretrained))
  summary = loop.train_and_evaluate(config, tmp_path / "finetune")
  assert summary["status"] == "completed"
  assert np.isfinite(losses(summary)[0])
  expected = {
    "sst2": {"validation": "accuracy"},
    "stsb": {"validation": "pearson"},
    "mnli": {"validation_matched": "accuracy", "validation_mismatched": "accuracy"},
  }[task]
  for split, metric in expected.items():
    assert metric in summary["eval"][split]


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


@pytest.mark.parametrize("layout", ["none", "framed"])
def test_finetuning_from_a_hugging_face_checkpoint(tmp_path, layout):
  """init_from="hf:DIR" loads the checkpoint (upcycled to Möbius layers with "framed")."""
  source = hugging_face_checkpoint(tmp_path / "hf")
  config = finetune_config(init_from=f"hf:{tmp_path / 'hf'}")
  config.model_overrides.layout = layout
  config.optimizer.learning_rate = 0.0  # the step leaves the loaded weights as they were
  summary = loop.train_and_evaluate(config, tmp_path / "run")
  assert summary["status"] == "completed" and np.isfinite(losses(summary)[0])
  run = experiment.restore_run(tmp_path / "run")
  assert run.model_config.layer_kinds == {"none": "VV", "framed": "MM"}[layout]
  loaded = run.params["backbone"]
  np.testing.assert_array_equal(
    loaded["embeddings"]["word_embeddings"]["embedding"],
    source["backbone"]["embeddings"]["word_embeddings"]["embedding"],
  )
  if layout == "none":
    np.testing.assert_array_equal(
      loaded["encoder"]["layer_1"]["mlp"]["output"]["kernel"],
      source["backbone"]["encoder"]["layer_1"]["mlp"]["output"]["kernel"],
    )


def test_gradient_accumulation_matches_the_full_batch(tmp_path):
  # Without dropout, 4 micro-batches of 2 give the gradient of the batch of 8.
  no_dropout = {"hidden_dropout": 0.0, "attention_dropout": 0.0}
  full = pretrain_config(num_train_steps=3)
  full.model_overrides.update(no_dropout)
  micro = pretrain_config(num_train_steps=3, grad_accum_steps=4)
  micro.model_overrides.update(no_dropout)
  a = loop.train_and_evaluate(full, tmp_path / "full")
  b = loop.train_and_evaluate(micro, tmp_path / "micro")
  np.testing.assert_allclose(losses(a), losses(b), rtol=1e-4)


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


# ---------------------------------------------------------------------------------- sharding


@pytest.mark.parametrize("model", ["bert-tiny", "mobius_bert-tiny"])
def test_one_device_and_a_2x2x2_mesh_give_the_same_losses(tmp_path, model):
  one = pretrain_config(model=model, num_train_steps=4)
  one.mesh.update(data=1, fsdp=1, tensor=1)
  eight = pretrain_config(model=model, num_train_steps=4)
  eight.mesh.update(data=2, fsdp=2, tensor=2)
  a = loop.train_and_evaluate(one, tmp_path / "one")
  b = loop.train_and_evaluate(eight, tmp_path / "eight")
  assert len(losses(a)) == 4
  np.testing.assert_allclose(losses(a), losses(b), rtol=2e-5)


# ---------------------------------------------------------------------------------- resume


def test_a_stopped_run_resumes_to_the_same_losses_and_parameters(tmp_path, monkeypatch):
  config = pretrain_config(model="mobius_bert-tiny", num_train_steps=6, checkpoint_every_steps=10)
  straight = loop.train_and_evaluate(config, tmp_path / "straight")

  # SIGTERM arrives while step 3 runs: the run finishes it, saves, and returns.
  shard_batch, calls = partitioning.shard_batch, []

  def shard_and_signal(*args):
    calls.append(1)
    if len(calls) == 3:
      os.kill(os.getpid(), signal.SIGTERM)
    return shard_batch(*args)

  monkeypatch.setattr(partitioning, "shard_batch", shard_and_signal)
  stopped = loop.train_and_evaluate(config, tmp_path / "resumed")
  monkeypatch.setattr(partitioning, "shard_batch", shard_batch)
  assert stopped["status"] == "interrupted" and stopped["step"] == 3
  assert (tmp_path / "resumed" / "checkpoints" / "3").is_dir()

  resumed = loop.train_and_evaluate(config, tmp_path / "resumed")
  assert resumed["status"] == "completed" and resumed["step"] == 6
  np.testing.assert_allclose(losses(resumed), losses(straight)[3:], rtol=1e-6)
  np.testing.assert_allclose(
    resumed["eval"]["validation"]["loss"], straight["eval"]["validation"]["loss"], rtol=1e-6
  )
  params = [
    ocp.StandardCheckpointer().restore(tmp_path / run / "checkpoints" / "6" / "state")["params"]
    for run in ("straight", "resumed")
  ]
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), *params)


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
  config = pretrain_config(num_train_steps=6)
  config.optimizer.learning_rate = 1e12
  config.optimizer.warmup_ratio = 0.0
  with pytest.raises(loop.NonFiniteLossError, match=r"at step \d"):
    loop.train_and_evaluate(config, tmp_path / "run")
  saved = sorted(
    int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit()
  )
  assert saved  # the good steps before the blow-up


# ------------------------------------------------------------------------------- bad input


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


def test_a_checkpoint_of_another_model_gives_a_clear_error(pretrained):
  with pytest.raises(CheckpointMismatchError, match=r"shape .* the config asks for"):
    loop.train_and_evaluate(pretrain_config(model="bert-mini"), pretrained)
