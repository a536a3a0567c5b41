"""What goes wrong and what the run then does: a test per fault of docs/training.md's table.

1 a non-finite run · 2 sizes beyond the model · 3 sizes out of range · 4 a workdir of another
run · 5 corrupt checkpoints · 6 files cut short · 7 errors that name the path · 8 numerics at
the edges. None may end in a raw orbax, grain, json or tokenizers traceback, lose a good
checkpoint or save a non-finite state.
"""

import copy
import json
import logging
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

import mobius_jax as mj
from tests.helpers import (
  checkpoint_params,
  finetune_config,
  hugging_face_checkpoint,
  mock_data,  # noqa: F401  (autouse: TFDS's mock data for every test here)
  pretrain_config,
)
from train import files
from train.core import checkpointing, experiment, loop, optim, state
from train.data import tasks, tokenizer


def poison_optimizer(monkeypatch, step: int) -> None:
  """Makes the learning rate of optimiser step `step` (1-based) NaN: a run that blows up there.

  Through the schedule, so that the optimiser's state has its usual tree (a resumed run with
  the real optimiser restores it).
  """
  schedule = optim.learning_rate_schedule

  def poisoned(config):
    rate = schedule(config)
    return lambda count: jnp.where(count == step - 1, jnp.nan, rate(count))

  monkeypatch.setattr(optim, "learning_rate_schedule", poisoned)


# -------------------------------------------------------------------- 1. a non-finite run


def test_a_run_that_is_nan_at_its_first_step_saves_nothing_and_a_rerun_finishes(
  tmp_path, monkeypatch
):
  poison_optimizer(monkeypatch, step=1)
  config = pretrain_config(num_train_steps=3)
  with pytest.raises(loop.NonFiniteLossError, match=r"at step 1.*No checkpoint was saved"):
    loop.train_and_evaluate(config, tmp_path / "run")
  assert checkpointing.saved_steps(tmp_path / "run" / "checkpoints") == []
  monkeypatch.undo()
  with tfds.testing.mock_data(num_examples=48):
    summary = loop.train_and_evaluate(config, tmp_path / "run")
  assert summary["status"] == "completed" and summary["step"] == 3


def test_a_run_that_turns_nan_keeps_its_last_finite_checkpoint_and_resumes_from_it(
  tmp_path, monkeypatch
):
  poison_optimizer(monkeypatch, step=3)
  config = pretrain_config(num_train_steps=4, checkpoint_every_steps=2, log_every_steps=10)
  with pytest.raises(loop.NonFiniteLossError, match=r"at step 3.*last finite checkpoint is step 2"):
    loop.train_and_evaluate(config, tmp_path / "run")
  assert checkpointing.saved_steps(tmp_path / "run" / "checkpoints") == [2]
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(checkpoint_params(tmp_path / "run", 2)))
  monkeypatch.undo()
  config.optimizer.learning_rate /= 10  # what the error advises
  with tfds.testing.mock_data(num_examples=48):
    with pytest.raises(ValueError, match=r"optimizer\.learning_rate: 0\.001 → 0\.0001"):
      loop.train_and_evaluate(config, tmp_path / "run")
    config.resume_with_changes = True
    summary = loop.train_and_evaluate(config, tmp_path / "run")
  assert summary["status"] == "completed" and summary["step"] == 4


def test_the_finite_check_finds_one_non_finite_element_in_any_leaf():
  tree = {"a": jnp.ones((3, 4)), "b": jnp.zeros(5, jnp.bfloat16)}
  assert bool(state.all_finite(tree))
  for leaf, index, value in [("a", (1, 2), jnp.nan), ("b", 3, jnp.inf), ("a", (0, 0), -jnp.inf)]:
    assert not bool(state.all_finite({**tree, leaf: tree[leaf].at[index].set(value)}))
  # +inf in one leaf and −inf in another sum to NaN: still non-finite.
  both = {"a": tree["a"].at[0, 0].set(jnp.inf), "b": tree["b"].at[0].set(-jnp.inf)}
  assert not bool(state.all_finite(both))


def test_a_non_finite_learning_rate_is_refused_before_any_work(tmp_path):
  config = pretrain_config()
  config.optimizer.learning_rate = float("nan")
  with pytest.raises(ValueError, match=r"config\.optimizer\.learning_rate=nan: use a finite rate"):
    loop.train_and_evaluate(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


# ----------------------------------------------------------- 2. sizes beyond the model


def test_rows_longer_than_the_position_table_are_refused(tmp_path):
  config = pretrain_config(max_len=600)
  with pytest.raises(ValueError, match=r"config\.max_len=600 exceeds the model's 512 position"):
    loop.train_and_evaluate(config, tmp_path / "run")


def test_a_vocabulary_larger_than_the_models_table_is_refused(tmp_path):
  hugging_face_checkpoint(tmp_path / "hf")
  with open(tmp_path / "hf" / "vocab.txt", "a") as vocab:
    vocab.write("extra\nwords\n")
  config = finetune_config(init_from=f"hf:{tmp_path / 'hf'}")
  with pytest.raises(
    ValueError, match=r"The tokenizer has 63 tokens, the model's embedding table 61 rows"
  ):
    loop.train_and_evaluate(config, tmp_path / "run")


# -------------------------------------------------------------- 3. sizes out of range


@pytest.mark.parametrize(
  ("overrides", "message"),
  [
    ({"batch_size": 0}, r"config\.batch_size=0: use a positive integer"),
    ({"batch_size": -8}, r"config\.batch_size=-8: use a positive integer"),
    ({"grad_accum_steps": 0}, r"config\.grad_accum_steps=0: use a positive integer"),
    ({"grad_accum_steps": 3}, r"config\.batch_size=8: must be a multiple of grad_accum_steps=3"),
    ({"max_len": 2}, r"config\.max_len=2: use at least 8 tokens"),
    ({"num_train_steps": -5}, r"config\.num_train_steps=-5: use an integer ≥ 0"),
    ({"mask_rate": 0.0}, r"config\.mask_rate=0\.0: use a rate in \(0, 1\)"),
    ({"eval_batch_size": 6}, r"config\.eval_batch_size=6: must split over the 4 data-parallel"),
  ],
)
def test_sizes_out_of_range_name_the_key_before_any_work(tmp_path, overrides, message):
  config = pretrain_config(**overrides)
  config.mesh.update(data=4)
  with pytest.raises(ValueError, match=message):
    loop.train_and_evaluate(config, tmp_path / "run")


def test_an_empty_workdir_is_refused(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(ValueError, match="The workdir is empty"):
    loop.train_and_evaluate(pretrain_config(), "")
  assert list(tmp_path.iterdir()) == []


def test_zero_steps_evaluate_the_initial_state(tmp_path):
  summary = loop.train_and_evaluate(pretrain_config(num_train_steps=0), tmp_path / "run")
  assert summary["status"] == "completed" and summary["step"] == 0
  assert summary["train"] == [] and 0 <= summary["eval"]["validation"]["accuracy"] <= 1


# ------------------------------------------------------- 4. a workdir of another run


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  """A 4-step BERT pretraining run with checkpoints at steps 2 and 4 (copied by each test)."""
  root = tmp_path_factory.mktemp("finished")
  with pytest.MonkeyPatch.context() as patch, tfds.testing.mock_data(num_examples=48):
    patch.setenv("MOBIUS_JAX_DATA", str(root / "cache"))
    loop.train_and_evaluate(FINISHED, root / "run")
  return root / "run"


FINISHED = pretrain_config(num_train_steps=4, checkpoint_every_steps=2, keep_checkpoints=3)


@pytest.fixture
def bert_run(finished_run, tmp_path):
  """A copy of `finished_run` to change."""
  return shutil.copytree(finished_run, tmp_path / "bert")


def test_another_models_config_is_refused_before_the_workdir_is_touched(bert_run):
  saved = (bert_run / "config.json").read_text()
  with pytest.raises(ValueError, match=r"model: 'bert-tiny' → 'roformer-tiny'.*new --workdir"):
    loop.train_and_evaluate(pretrain_config(model="roformer-tiny"), bert_run)
  assert (bert_run / "config.json").read_text() == saved
  assert experiment.restore_run(bert_run).step == 4  # the run can still be analysed


def test_another_models_checkpoint_names_the_leaf_not_an_orbax_error(bert_run):
  config = pretrain_config(model="roformer-tiny", resume_with_changes=True)
  with pytest.raises(checkpointing.CheckpointMismatchError, match=r"position_embeddings"):
    loop.train_and_evaluate(config, bert_run)


@pytest.mark.parametrize(
  ("change", "message"),
  [
    ({"seed": 1}, r"seed: 0 → 1"),
    ({"dtype": "bfloat16"}, r"dtype: 'float32' → 'bfloat16'"),
    ({"optimizer.learning_rate": 0.5}, r"optimizer\.learning_rate: 0\.001 → 0\.5"),
  ],
)
def test_a_changed_seed_rate_or_dtype_is_listed_not_resumed_silently(bert_run, change, message):
  config = copy.deepcopy(FINISHED)
  for key, value in change.items():
    config.update_from_flattened_dict({key: value})
  with pytest.raises(ValueError, match=message):
    loop.train_and_evaluate(config, bert_run)


def test_run_length_and_cadence_may_change_on_resume(bert_run, caplog):
  config = copy.deepcopy(FINISHED)
  config.update(num_train_steps=5, log_every_steps=5, eval_examples=8)
  with caplog.at_level(logging.WARNING):
    summary = loop.train_and_evaluate(config, bert_run)
  assert summary["status"] == "completed" and summary["step"] == 5
  assert "num_train_steps changed: 4 → 5" in caplog.text


# ------------------------------------------------------------- 5. corrupt checkpoints


def corrupt(checkpoint, what):
  """Cuts every array file of a checkpoint short, or breaks its data position's JSON."""
  if what == "arrays":
    cut = [
      path
      for path in (checkpoint / "state").rglob("*")
      if path.is_file() and path.parent.name == "d"
    ]
    assert cut, list((checkpoint / "state").rglob("*"))
    for path in cut:
      path.write_bytes(path.read_bytes()[:10])
  else:
    path = checkpoint / "data" / "metadata"
    path.write_text(path.read_text()[:5])


@pytest.mark.parametrize("what", ["arrays", "json"])
def test_an_unreadable_latest_checkpoint_falls_back_to_the_one_before(bert_run, what, caplog):
  corrupt(bert_run / "checkpoints" / "4", what)
  assert experiment.restore_run(bert_run).step == 2  # analysis reads the good one
  config = copy.deepcopy(FINISHED)
  config.num_train_steps = 6
  with caplog.at_level(logging.WARNING):
    summary = loop.train_and_evaluate(config, bert_run)
  assert "checkpoints/4 cannot be read" in caplog.text
  assert summary["status"] == "completed" and summary["step"] == 6
  assert checkpointing.saved_steps(bert_run / "checkpoints") == [2, 4, 6]
  assert (bert_run / "checkpoints" / "4.unreadable").is_dir()  # set aside, kept


def test_no_readable_checkpoint_gives_an_error_naming_them(bert_run):
  for step in (2, 4):
    corrupt(bert_run / "checkpoints" / str(step), "arrays")
  with pytest.raises(checkpointing.CheckpointUnreadableError, match=r"steps \[4, 2\]"):
    loop.train_and_evaluate(copy.deepcopy(FINISHED), bert_run)
  assert checkpointing.saved_steps(bert_run / "checkpoints") == [2, 4]


# --------------------------------------------------------------- 6. files cut short


def test_a_failed_write_leaves_the_old_file_whole_and_no_temporary(tmp_path, monkeypatch):
  path = tmp_path / "summary.json"
  files.write_json(path, {"status": "completed"})
  monkeypatch.setattr(files.os, "replace", lambda *args: (_ for _ in ()).throw(OSError("disk")))
  with pytest.raises(OSError, match="disk"):
    files.write_json(path, {"status": "interrupted"})
  assert json.loads(path.read_text()) == {"status": "completed"}
  assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_truncated_tokenizer_cache_is_rebuilt(tmp_path):
  corpus = tasks.get_corpus("c4")
  kwargs = dict(corpus=corpus, vocab_size=200, cache_dir=tmp_path)
  first = tokenizer.load_tokenizer(**kwargs)
  (cached,) = (tmp_path / "tokenizers").iterdir()
  cached.write_text(cached.read_text()[:50])
  again = tokenizer.load_tokenizer(**kwargs)
  # Rebuilt, not read: WordPiece training ties break differently between runs.
  assert again.get_vocab_size() == first.get_vocab_size()
  assert json.loads(cached.read_text())  # whole again


@pytest.mark.parametrize("name", ["tokenizer.json", "config.json"])
def test_a_truncated_workdir_file_gives_an_error_naming_it(bert_run, name):
  path = bert_run / name
  path.write_text(path.read_text()[:20])
  with pytest.raises(ValueError, match=f"{path} cannot be read"):
    loop.train_and_evaluate(copy.deepcopy(FINISHED), bert_run)


# ------------------------------------------------------- 7. errors that name the path


def test_a_missing_vocab_file_is_named_with_its_key(tmp_path):
  config = pretrain_config()
  config.tokenizer.vocab_file = str(tmp_path / "nowhere" / "vocab.txt")
  with pytest.raises(
    ValueError, match=r"config\.tokenizer\.vocab_file='.*nowhere/vocab\.txt' is no file"
  ):
    loop.train_and_evaluate(config, tmp_path / "run")


def test_a_hugging_face_folder_without_weights_is_named(tmp_path):
  hugging_face_checkpoint(tmp_path / "hf")
  (tmp_path / "hf" / "model.safetensors").unlink()
  config = finetune_config(init_from=f"hf:{tmp_path / 'hf'}")
  with pytest.raises(
    FileNotFoundError, match=r"hf is no Hugging Face checkpoint folder: it lacks model\.safetensors"
  ):
    loop.train_and_evaluate(config, tmp_path / "run")


# --------------------------------------------------------------- 8. numerics at the edges


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_a_mobius_map_far_out_is_finite_with_finite_gradients(dtype):
  a, b, c, d = (
    (jnp.array(x[0], dtype), jnp.array(x[1], dtype)) for x in ((2, 1), (0, 1), (1, 0), (1, -1))
  )

  def f(z_re):
    out = mj.mobius_transform_pair((z_re, jnp.array(0, dtype)), a, b, c, d, eps=1e-4)
    return out[0].astype(jnp.float32) + out[1].astype(jnp.float32)

  z = jnp.array(1e30, dtype)
  value, grad = jax.value_and_grad(f)(z)
  assert np.isfinite(value) and np.isfinite(grad)
  np.testing.assert_allclose(float(value), 2 + 1, rtol=2e-2)  # f(z) → a / c = 2 + i


def test_classify_ignores_scale_and_flags_non_finite_maps():
  identity = tuple(jnp.array(x, jnp.complex64) for x in (1, 0, 0, 1))
  for scale in (1e-20, 1e20):
    code = mj.classify(tuple(x * scale for x in identity))
    assert mj.MOBIUS_TYPES[int(code)] == "identity"
  nan_map = (jnp.complex64(jnp.nan), *identity[1:])
  assert mj.MOBIUS_TYPES[int(mj.classify(nan_map))] not in ("loxodromic", "identity")
