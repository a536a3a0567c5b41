"""The training loop under `tfds.testing.mock_data`: steps, sharding, resume, bad input."""

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
from tests.train.runs import (
  checkpoint_params,
  finetune_config,
  hugging_face_checkpoint,
  losses,
  mock_data,  # noqa: F401  (autouse: TFDS's mock data for every test here)
  pretrain_config,
)
from train import (
  checkpointing,
  evaluation,
  experiment,
  input_pipeline,
  loop,
  objectives,
  optim,
  partitioning,
  tasks,
  tokenizer,
)
from train import state as train_state
from train.checkpointing import CheckpointMismatchError
from train.tokenizer import SPECIAL_TOKENS


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
  """A one-step pretraining run's workdir, shared by the fine-tuning tests."""
  workdir = tmp_path_factory.mktemp("pretrained")
  with pytest.MonkeyPatch.context() as patch, tfds.testing.mock_data(num_examples=48):
    patch.setenv("MOBIUS_JAX_DATA", str(workdir / "cache"))
    loop.train_and_evaluate(pretrain_config(), workdir / "run")
  return workdir / "run"


# ------------------------------------------------------------------------------- masking


def bert_uncased_like_vocabulary(words: int = 795) -> list[str]:
  """bert-base-uncased's layout: [PAD] 0, [unused0 … 98] 1 … 99, [UNK] 100, [CLS] 101,
  [SEP] 102, [MASK] 103, [unused99 …] 104 … 998, then ordinary tokens (shortened here)."""
  return [
    "[PAD]",
    *(f"[unused{i}]" for i in range(99)),
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    *(f"[unused{i}]" for i in range(99, 994)),
    *(f"word{i}" for i in range(words)),
  ]


def test_special_ids_of_a_bert_base_uncased_vocabulary():
  vocab = bert_uncased_like_vocabulary()
  tok = tokenizer.bert_tokenizer({token: i for i, token in enumerate(vocab)})
  assert tokenizer.special_ids(tok) == tuple(range(999))
  assert tok.token_to_id("[MASK]") == 103


def test_bert_masking_chooses_ordinary_tokens_at_the_rate_and_replaces_them_80_10_10():
  # A vocabulary laid out like bert-base-uncased's: specials and [unusedN] are ids 0 … 998.
  length, vocab_size, mask_id, special = 128, 1794, 103, tuple(range(999))
  rng = np.random.default_rng(0)
  ids = rng.integers(0, vocab_size, (64, length))  # specials anywhere, [unusedN] included
  ids[:, 0], ids[:32, 100:] = 101, 0  # [CLS] first; half the rows padded after 100 tokens
  p = objectives.max_predictions(0.15, length)
  assert p == 20 and objectives.max_predictions(0.15, 512) == 78  # ⌈0.15 L⌉, rounded up to even
  masked, positions, labels, weights = jax.device_get(
    objectives.mask_tokens(
      jax.random.key(0),
      jax.numpy.asarray(ids),
      rate=0.15,
      max_predictions=p,
      mask_id=mask_id,
      special_ids=special,
      vocab_size=vocab_size,
    )
  )
  ordinary = ids >= 999
  np.testing.assert_array_equal(weights.sum(axis=1), np.round(0.15 * ordinary.sum(axis=1)))
  chosen = positions[weights > 0]
  rows = np.nonzero(weights > 0)[0]
  assert ordinary[rows, chosen].all()  # never [PAD], [CLS], [SEP], [UNK], [MASK] or [unusedN]
  np.testing.assert_array_equal(labels, np.take_along_axis(ids, positions, axis=1))
  new = masked[rows, chosen]
  shares = [np.mean(new == mask_id), np.mean(new == labels[weights > 0])]
  assert 0.75 < shares[0] < 0.85 and 0.07 < shares[1] < 0.14, shares
  replaced = new[(new != mask_id) & (new != labels[weights > 0])]
  assert len(replaced) > 30 and (replaced >= 999).all()  # random draws are ordinary tokens
  unchosen = np.ones_like(ids, bool)
  unchosen[rows, chosen] = False
  np.testing.assert_array_equal(masked[unchosen], ids[unchosen])


def test_masked_lm_accuracy_counts_the_masked_tokens_whose_label_has_the_largest_logit():
  logits = jax.random.normal(jax.random.key(0), (4, 6, 50))
  labels = jax.random.randint(jax.random.key(1), (4, 6), 0, 50)
  labels = labels.at[:2].set(jax.numpy.argmax(logits[:2], -1))  # rows 0 and 1: all right
  weights = jax.numpy.ones((4, 6)).at[1, 3:].set(0.0)  # three of row 1's do not count

  class FixedLogits:  # stands in for the model: these logits, whatever the input
    def apply(self, variables, *args, **kwargs):
      return logits

  batch = {"input_ids": jax.numpy.ones((4, 8), int), "positions": None}
  objective = objectives.MaskedLMObjective(FixedLogits(), masking={})
  _, sums = objective.loss({}, {**batch, "labels": labels, "weights": weights}, None, train=False)
  expected = ((np.argmax(logits, -1) == labels) * weights).sum()
  assert 9 <= expected < 12 and float(sums["correct"]) == expected and sums["count"] == 21


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


def test_a_checkpoint_of_another_size_names_the_array_that_differs(pretrained, tmp_path):
  # Past the config check (resume_with_changes), the checkpoint itself must not fit.
  workdir = shutil.copytree(pretrained, tmp_path / "run")
  config = pretrain_config(model="bert-mini", resume_with_changes=True)
  with pytest.raises(CheckpointMismatchError, match=r"shape .* the config asks for"):
    loop.train_and_evaluate(config, workdir)


# ----------------------------------------------------------------------------- evaluation


def test_pretraining_evaluation_scores_every_row_once(tmp_path, monkeypatch):
  # 12 validation rows in batches of 8: the second batch has 4 padded rows, which must add no
  # masked token to the count (they are copies of row 0).
  config = pretrain_config(eval_examples=12, eval_batch_size=8)
  counted, evaluate = [], evaluation.evaluate

  def spy(eval_step, *args, **kwargs):
    def counting(state, batch):
      out = eval_step(state, batch)
      counted.append(float(out["count"]))
      return out

    return evaluate(counting, *args, **kwargs)

  monkeypatch.setattr(evaluation, "evaluate", spy)
  loop.train_and_evaluate(config, tmp_path / "run")
  tok = experiment.restore_run(tmp_path / "run").tokenizer
  rows = input_pipeline.pretraining_data(config, tasks.get_corpus("c4"), tok).eval_splits
  ordinary = (rows["validation"]["input_ids"] >= len(SPECIAL_TOKENS)).sum(axis=1)
  cap = objectives.max_predictions(config.mask_rate, config.max_len)
  assert len(ordinary) == 12 and len(counted) == 2
  assert sum(counted) == np.minimum(np.round(config.mask_rate * ordinary), cap).sum()


def test_masked_lm_accuracy_is_also_reported_at_15_percent(tmp_path):
  # MosaicBERT evaluates at 15 % whatever its training rate; so do we, beside the training rate.
  summary = loop.train_and_evaluate(pretrain_config(mask_rate=0.3), tmp_path / "run")
  assert set(summary["eval"]) == {"validation", "validation_mask0.15"}
  assert summary["eval"]["validation"] != summary["eval"]["validation_mask0.15"]


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


# ------------------------------------------------------------------------------ tokenizer


def test_the_tokenizer_learns_its_vocabulary_from_the_training_split_only(tmp_path, monkeypatch):
  read, data_source = [], tokenizer.datasets.data_source

  def spy(dataset, split, *args):
    read.append((dataset, split))
    return data_source(dataset, split, *args)

  monkeypatch.setattr(tokenizer.datasets, "data_source", spy)
  tokenizer.load_tokenizer(corpus=tasks.get_corpus("c4"), vocab_size=200, cache_dir=tmp_path)
  assert read == [("c4/en", "train")]


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
