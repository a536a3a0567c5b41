"""The paired study's driver (`train.studies.paired`): models parsed from their names, each
model's and seed's configs, and no row (nor fine-tuning) after an interrupted run."""

import pathlib

import pytest

from configs import default
from train.studies import paired


def test_models_parse_presets_with_overrides_and_know_their_baseline():
  model = paired.Model.parse("mobius_bert-tiny+mobius_key_value=elementwise+num_mobius_heads=2")
  assert model.preset == "mobius_bert-tiny" and model.baseline == "bert-tiny"
  assert model.overrides == {"mobius_key_value": "elementwise", "num_mobius_heads": 2}
  assert paired.Model.parse("roformer-tiny").baseline is None
  with pytest.raises(ValueError, match=r"\+field=value"):
    paired.Model.parse("bert-tiny+dropout")


def test_an_interrupted_pretraining_is_not_fine_tuned(monkeypatch, tmp_path):
  # A signal stops the pretraining (its checkpoint saved): the fine-tuning must not start from
  # it, and the driver reports no row, so rerunning the command resumes the pretraining.
  started = []

  def train_and_evaluate(config, workdir):
    started.append(workdir.name)
    return {"status": "interrupted", "step": 3}

  monkeypatch.setattr(paired, "configs", lambda study, model, seed, workdir: ({}, {}, {}))
  monkeypatch.setattr(paired.loop, "train_and_evaluate", train_and_evaluate)
  study = paired.Study(None, default.get_config("finetune"))  # the task is read after the runs
  assert paired.run_one(study, paired.Model.parse("bert-tiny"), 0, tmp_path) is None
  assert started == ["pretrain"]


@pytest.mark.parametrize(
  ("name", "message"),
  [
    ("gpt-tiny", r"^--models 'gpt-tiny': .*model in \('bert', 'roformer'"),
    (
      "bert-tiny+num_mobius_heads=7",
      r"^--models 'bert-tiny\+num_mobius_heads=7': .*num_mobius_heads=7",
    ),
    ("bert-tiny+colour=3", r"^--models 'bert-tiny\+colour=3': "),
  ],
)
def test_an_unknown_preset_or_field_is_refused_by_name(name, message):
  with pytest.raises(ValueError, match=message):
    paired.Model.parse(name)


def test_each_model_and_seed_gets_its_configs_and_the_study_is_left_as_it_was():
  study = paired.Study(default.get_config(), default.get_config("finetune"))
  model = paired.Model.parse("mobius_bert-tiny+num_mobius_heads=1")
  workdir = pathlib.Path("/runs/seed3/mobius")
  pretrain, finetune, scratch = paired.configs(study, model, 3, workdir)
  for config in (pretrain, finetune, scratch):
    assert (config.model, config.seed) == ("mobius_bert-tiny", 3)
    assert config.model_overrides.num_mobius_heads == 1
  assert pretrain.mode == "pretrain" and finetune.mode == scratch.mode == "finetune"
  assert pretrain.model_overrides.hidden_dropout == 0.0  # the pretraining config's own
  assert finetune.init_from == "/runs/seed3/mobius/pretrain" and scratch.init_from == ""
  assert (
    study.pretrain.model == "bert-tiny" and "num_mobius_heads" not in study.finetune.model_overrides
  )


def test_the_study_stops_at_the_first_interrupted_run(monkeypatch, tmp_path):
  calls = []

  def run_one(study, model, seed, workdir):
    calls.append((model.name, seed, workdir.relative_to(tmp_path).as_posix()))
    return None if (seed, model.name) == (1, "bert-tiny") else {"model": model.name, "seed": seed}

  monkeypatch.setattr(paired, "run_one", run_one)
  models = [paired.Model.parse(name) for name in ("mobius_bert-tiny", "bert-tiny")]
  study = paired.Study(default.get_config(), default.get_config("finetune"))
  assert paired.run_study(study, models, 1, tmp_path) == [
    {"model": "mobius_bert-tiny", "seed": 0},
    {"model": "bert-tiny", "seed": 0},
  ]
  calls.clear()
  assert paired.run_study(study, models, 3, tmp_path) is None
  assert calls == [
    ("mobius_bert-tiny", 0, "seed0/mobius_bert-tiny"),
    ("bert-tiny", 0, "seed0/bert-tiny"),
    ("mobius_bert-tiny", 1, "seed1/mobius_bert-tiny"),
    ("bert-tiny", 1, "seed1/bert-tiny"),
  ]


def test_every_config_of_the_study_is_checked_before_any_run(monkeypatch, tmp_path):
  monkeypatch.setattr(paired, "run_one", lambda *args: pytest.fail("a run started"))
  finetune = default.get_config("finetune")
  finetune.task = "glue_sst2"
  study = paired.Study(default.get_config(), finetune)
  models = [paired.Model.parse("bert-tiny")]
  with pytest.raises(ValueError, match=r"^--models 'bert-tiny', finetune: Unknown task 'glue_sst"):
    paired.run_study(study, models, 1, tmp_path)
  study.pretrain.batch_size = 0
  with pytest.raises(ValueError, match=r"^--models 'bert-tiny', pretrain: config\.batch_size=0"):
    paired.run_study(study, models, 1, tmp_path)


def test_the_analysis_gives_the_rows_map_and_near_zero_shares():
  analysed = {
    "attention": {
      "by_kind": {"mobius": {"near_zero_share": 0.2}, "vanilla": {"near_zero_share": 0.1}}
    },
    "maps": {"layers": [{}], "total": {"shares": {"elliptic": 0.5, "loxodromic": 0.5}}},
  }
  assert paired.analysis_cells(analysed) == {
    "near_zero/mobius": 0.2,
    "near_zero/vanilla": 0.1,
    "maps/elliptic": 0.5,
    "maps/loxodromic": 0.5,
  }
  analysed["maps"]["layers"] = []  # a vanilla model: no maps
  assert paired.analysis_cells(analysed) == {"near_zero/mobius": 0.2, "near_zero/vanilla": 0.1}
