"""The checks before any work (`train.core.checks`): values out of range, the fit of the config
to the model and the mesh, the workdir, and a resumed run's changed keys. Each error names the
key (or the path), its value and what is allowed.

The same faults through the loop (before any work is done) are in tests/e2e/test_faults.py.
"""

import json

import pytest

from configs import default
from mobius_jax.models import ModelConfig
from mobius_jax.sharding import make_mesh
from train.core import checks


@pytest.mark.parametrize(
  ("change", "message"),
  [
    ({"mode": "distill"}, r"config\.mode='distill': use one of \('pretrain', 'finetune'\)"),
    ({"corpus": "books"}, r"Unknown pretraining corpus 'books'; known: \('c4', 'wikitext2'\)"),
    ({"keep_checkpoints": 0}, r"config\.keep_checkpoints=0: use a positive integer"),
    ({"batch_size": True}, r"config\.batch_size=True: use a positive integer"),
    ({"length_buckets": (4, 32)}, r"config\.length_buckets=\(4, 32\): use lengths from 8 to"),
    ({"tokenizer.vocab_size": 10}, r"config\.tokenizer\.vocab_size=10: use more than 16"),
    ({"optimizer.b2": 1.0}, r"config\.optimizer\.b2=1\.0: use a value in \[0, 1\)"),
    ({"optimizer.eps": 0.0}, r"config\.optimizer\.eps=0\.0: use a finite value > 0"),
    ({"optimizer.schedule": "step"}, r"config\.optimizer\.schedule='step': use one of"),
    (
      {"optimizer.rate_multipliers": (("query_mobius", -1.0),)},
      r"optimizer\.rate_multipliers=\(\('query_mobius', -1\.0\),\): use \(\(name, factor",
    ),
    ({"optimizer.frozen": ("query", 3)}, r"optimizer\.frozen=\('query', 3\): use a tuple of"),
    ({"tokenizer.vocab_file": None}, r"needs config\.tokenizer\.vocab_file"),
  ],
)
def test_a_value_out_of_range_names_the_key(change, message):
  config = default.get_config()
  config.update_from_flattened_dict(change)
  with pytest.raises(ValueError, match=message):
    checks.check_config(config)


def test_a_finetuning_config_needs_a_known_task():
  config = default.get_config("finetune")
  checks.check_config(config)
  config.task = "glue_sst2"
  with pytest.raises(ValueError, match=r"Unknown task 'glue_sst2'; known: \('cola'"):
    checks.check_config(config)


def test_the_config_must_fit_the_model_and_the_mesh():
  config = default.get_config()
  model = ModelConfig.preset("bert-tiny", vocab_size=64, max_position_embeddings=64)
  mesh = make_mesh(data=2, fsdp=2, tensor=2)
  checks.check_fit(config, model, 64, mesh)
  config.max_len = 128
  with pytest.raises(ValueError, match=r"config\.max_len=128 exceeds the model's 64 position"):
    checks.check_fit(config, model, 64, mesh)
  config.max_len = 64
  with pytest.raises(ValueError, match="The tokenizer has 65 tokens, the model's embedding table"):
    checks.check_fit(config, model, 65, mesh)
  config.batch_size = 6
  with pytest.raises(ValueError, match=r"config\.batch_size=6: must split over the 4 data-par"):
    checks.check_fit(config, model, 64, mesh)
  config.update(batch_size=32, grad_accum_steps=16)
  with pytest.raises(ValueError, match=r"grad_accum_steps=16: leaves micro-batches of 2 rows"):
    checks.check_fit(config, model, 64, mesh)


def test_the_workdir_is_created_and_must_be_writable(tmp_path):
  workdir = checks.check_workdir(str(tmp_path / "a" / "run"))
  assert workdir == tmp_path / "a" / "run" and workdir.is_dir()
  assert list(workdir.iterdir()) == []  # the write test leaves nothing
  with pytest.raises(ValueError, match="The workdir is empty"):
    checks.check_workdir("  ")
  (tmp_path / "file").write_text("")
  with pytest.raises(PermissionError, match=r"Cannot write to the workdir .*file/run"):
    checks.check_workdir(tmp_path / "file" / "run")


def test_a_resume_lists_the_changed_keys_and_allows_run_length_and_cadence(tmp_path, caplog):
  saved = default.get_config()
  path = tmp_path / "config.json"
  path.write_text(saved.to_json_best_effort())
  config = default.get_config()
  config.update(num_train_steps=5000, log_every_steps=10)
  config.mesh.data = 2
  assert checks.check_resume(config, path) == ["log_every_steps", "mesh.data", "num_train_steps"]
  assert "Resuming with num_train_steps changed: 2000 → 5000" in caplog.text
  config.seed, config.optimizer.learning_rate = 1, 1e-4
  with pytest.raises(ValueError, match=r"optimizer\.learning_rate: 0\.003 → 0\.0001; seed: 0 → 1"):
    checks.check_resume(config, path)
  config.resume_with_changes = True
  assert "seed" in checks.check_resume(config, path)


def test_a_saved_config_that_cannot_be_read_is_named(tmp_path):
  path = tmp_path / "config.json"
  path.write_text(json.dumps({"seed": 0})[:5])
  with pytest.raises(ValueError, match=f"The saved config {path} cannot be read"):
    checks.check_resume(default.get_config(), path)
