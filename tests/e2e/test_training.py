"""Training runs end to end under `tfds.testing.mock_data`: one step of pretraining and of
fine-tuning, runs against runs (buckets, accumulation, a mesh, a resume), a non-finite loss, a
checkpoint of another size, diagnostics, bfloat16, and tiny models that learn.

The loop's own bookkeeping (summary, compilations, errors before work) is tested in
tests/train/core/test_loop.py, the evaluation and the experiment beside it.
"""

import functools
import os
import re
import shutil
import signal

import flax
import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from mobius_jax.models import MaskedLM, ModelConfig
from tests.helpers import (
  checkpoint_params,
  finetune_config,
  hugging_face_checkpoint,
  losses,
  mock_data,  # noqa: F401  (autouse: TFDS's mock data for every test here)
  pretrain_config,
)
from train.core import checkpointing, experiment, loop, objectives, optim, partitioning
from train.core import state as train_state
from train.core.checkpointing import CheckpointMismatchError


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
  """A one-step pretraining run's workdir, shared by the fine-tuning tests."""
  workdir = tmp_path_factory.mktemp("pretrained")
  with pytest.MonkeyPatch.context() as patch, tfds.testing.mock_data(num_examples=48):
    patch.setenv("MOBIUS_JAX_DATA", str(workdir / "cache"))
    loop.train_and_evaluate(pretrain_config(), workdir / "run")
  return workdir / "run"


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


def test_length_buckets_train_and_evaluate_as_padding_to_max_len(tmp_path):
  # Batches cut to 8, 16 or 32 tokens: the padding they drop is masked out anyway.
  config = finetune_config(num_train_steps=3, max_len=32)
  config.model_overrides.update(hidden_dropout=0.0, attention_dropout=0.0)
  padded = loop.train_and_evaluate(config, tmp_path / "padded")
  config.length_buckets = (8, 16)
  cut = loop.train_and_evaluate(config, tmp_path / "cut")
  np.testing.assert_allclose(losses(cut), losses(padded), rtol=1e-5)
  assert cut["eval"]["validation"] == pytest.approx(padded["eval"]["validation"], rel=1e-5)


def test_gradient_accumulation_matches_the_full_batch(tmp_path):
  # Without dropout, 4 micro-batches of 2 give the gradient of the batch of 8: the same loss,
  # gradient norm (a sum of the micro-batches' gradients would be 4 × larger) and parameters.
  no_dropout = {"hidden_dropout": 0.0, "attention_dropout": 0.0}
  full = pretrain_config(num_train_steps=3, checkpoint_every_steps=3)
  micro = pretrain_config(num_train_steps=3, checkpoint_every_steps=3, grad_accum_steps=4)
  for config in (full, micro):
    config.model_overrides.update(no_dropout)
    # Adam divides each gradient by its own scale: with eps 1e-6 an element whose gradient is
    # zero up to float32 rounding moves by a rounding-dependent fraction of the learning rate.
    # eps 1e-3 keeps that noise below 1e-8 and still moves the parameters by ~lr per step.
    config.optimizer.eps = 1e-3
  a = loop.train_and_evaluate(full, tmp_path / "full")
  b = loop.train_and_evaluate(micro, tmp_path / "micro")
  for key in ("loss", "grad_norm"):
    np.testing.assert_allclose(
      [e[key] for e in a["train"]], [e[key] for e in b["train"]], rtol=1e-5
    )
  params = [checkpoint_params(tmp_path / run, 3) for run in ("full", "micro")]
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7), *params)


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


@pytest.mark.parametrize(
  "config",
  [
    # C4's streaming path (grain over a TFDS source), and in-memory arrays (fine-tuning).
    pretrain_config(model="mobius_bert-tiny", num_train_steps=6, checkpoint_every_steps=10),
    finetune_config(num_train_steps=6, checkpoint_every_steps=10),
  ],
  ids=["pretrain-streaming", "finetune-in-memory"],
)
def test_a_stopped_run_resumes_to_the_same_losses_and_parameters(tmp_path, monkeypatch, config):
  straight = loop.train_and_evaluate(config, tmp_path / "straight")

  # SIGTERM arrives while step 3 is prepared: every process reads the stop vote one step
  # later (signals.StopVote), so the run finishes step 4, saves it, and returns.
  shard_batch, calls = partitioning.shard_batch, []

  def shard_and_signal(*args):
    calls.append(1)
    if len(calls) == 3:
      os.kill(os.getpid(), signal.SIGTERM)
    return shard_batch(*args)

  monkeypatch.setattr(partitioning, "shard_batch", shard_and_signal)
  stopped = loop.train_and_evaluate(config, tmp_path / "resumed")
  monkeypatch.setattr(partitioning, "shard_batch", shard_batch)
  assert stopped["status"] == "interrupted" and stopped["step"] == 4
  assert (tmp_path / "resumed" / "checkpoints" / "4").is_dir()

  resumed = loop.train_and_evaluate(config, tmp_path / "resumed")
  assert resumed["status"] == "completed" and resumed["step"] == 6
  # The resumed summary holds the whole curve: the stopped call's steps and its own.
  np.testing.assert_allclose(losses(resumed), losses(straight), rtol=1e-6)
  np.testing.assert_allclose(
    resumed["eval"]["validation"]["loss"], straight["eval"]["validation"]["loss"], rtol=1e-6
  )
  params = [checkpoint_params(tmp_path / run, 6) for run in ("straight", "resumed")]
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), *params)


def test_a_non_finite_loss_stops_the_run_and_keeps_only_finite_checkpoints(tmp_path):
  config = pretrain_config(num_train_steps=6)
  config.optimizer.learning_rate = 1e12
  config.optimizer.warmup_ratio = 0.0
  with pytest.raises(loop.NonFiniteLossError, match=r"at step (\d)") as error:
    loop.train_and_evaluate(config, tmp_path / "run")
  bad_step = int(re.search(r"at step (\d)", str(error.value)).group(1))
  saved = checkpointing.saved_steps(tmp_path / "run" / "checkpoints")
  assert all(step < bad_step for step in saved)
  for step in saved:  # what was kept is finite, and restorable
    leaves = jax.tree.leaves(checkpoint_params(tmp_path / "run", step))
    assert all(np.isfinite(leaf).all() for leaf in leaves)


# ------------------------------------------------------------------------------- bad state


def test_a_checkpoint_of_another_size_names_the_array_that_differs(pretrained, tmp_path):
  # Past the config check (resume_with_changes), the checkpoint itself must not fit.
  workdir = shutil.copytree(pretrained, tmp_path / "run")
  config = pretrain_config(model="bert-mini", resume_with_changes=True)
  with pytest.raises(CheckpointMismatchError, match=r"shape .* the config asks for"):
    loop.train_and_evaluate(config, workdir)


# ---------------------------------------------------------------------------- diagnostics


def test_diagnostics_report_gradient_groups_determinants_and_pole_distances(tmp_path):
  config = pretrain_config(model="mobius_bert-tiny", num_train_steps=2, diagnostics=True)
  entry = loop.train_and_evaluate(config, tmp_path / "run")["train"][-1]
  assert all(entry[f"grad_norm/{g}"] > 0 for g in ("mobius", "complex", "other"))
  # Near the identity at initialisation: |ad − bc| ≈ 1, inputs far from the pole at −d/c ≈ ∞.
  assert 0.9 < entry["det/min"] <= entry["det/median"] < 1.1
  assert entry["pole/distance_min"] > 0.1 and entry["pole/near_share"] == 0.0
  # A vanilla model has neither Möbius coefficients nor complex projections to report.
  config = pretrain_config(num_train_steps=2, diagnostics=True)
  entry = loop.train_and_evaluate(config, tmp_path / "vanilla")["train"][-1]
  assert entry["grad_norm/other"] > 0 and "grad_norm/mobius" not in entry
  assert "grad_norm/complex" not in entry and "det/min" not in entry


# --------------------------------------------------------------------------------- learning


def test_a_bfloat16_run_trains_and_evaluates(tmp_path):
  summary = loop.train_and_evaluate(
    pretrain_config(model="mobius_bert-tiny", dtype="bfloat16", num_train_steps=2), tmp_path
  )
  assert summary["status"] == "completed" and all(np.isfinite(losses(summary)))
  assert np.isfinite(summary["eval"]["validation"]["loss"])


@pytest.mark.parametrize("model", ["bert-tiny", "mobius_bert-tiny"])
def test_a_tiny_model_overfits_one_batch(model):
  # The same 8 rows, masked the same way, 60 Adam steps without dropout: a model that learns
  # drives its masked-LM loss far below the uniform guess's log V.
  model_config = ModelConfig.preset(model, vocab_size=64, hidden_dropout=0.0, attention_dropout=0.0)
  masked_lm = MaskedLM(model_config)
  objective = objectives.MaskedLMObjective(
    masked_lm,
    dict(rate=0.3, max_predictions=6, mask_id=4, special_ids=(0, 1, 2, 3, 4), vocab_size=64),
  )
  config = pretrain_config(num_train_steps=60)
  config.optimizer.update(learning_rate=3e-3, warmup_ratio=0.0)
  state = train_state.init_fn(masked_lm, optim.make_optimizer(config), 16)(jax.random.key(0))
  state = flax.linen.meta.unbox(state)
  ids = jax.random.randint(jax.random.key(1), (8, 16), 5, 64)
  step = jax.jit(functools.partial(train_state.train_step, objective=objective))
  first = None
  for _ in range(60):  # one fixed key: the same masks every step
    state, metrics = step(state, {"input_ids": ids}, jax.random.key(2))
    first = float(metrics["loss"]) if first is None else first
  assert first > 0.9 * np.log(64)
  assert float(metrics["loss"]) < first / 10, (first, float(metrics["loss"]))
