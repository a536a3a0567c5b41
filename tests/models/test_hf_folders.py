"""Hugging Face folders as the hub has them: layouts, tokenizer files, and damaged files.

The folders are written here from a random tiny BERT (`tests.helpers.hugging_face_checkpoint`).
"""

import json
import shutil

import numpy as np
import pytest

from mobius_jax.models import ModelConfig, hf
from tests.helpers import hugging_face_checkpoint
from train.data import tokenizer


@pytest.fixture
def folder(tmp_path):
  hugging_face_checkpoint(tmp_path / "hf")
  return tmp_path / "hf"


def as_tokenizer_json(folder) -> None:
  """Replaces the folder's vocab.txt by the tokenizer.json a hub folder would hold."""
  vocab = str(folder / "vocab.txt")
  saved = tokenizer.bert_tokenizer(vocab)
  saved.enable_truncation(8)  # as hub files carry them; the pipeline must drop both
  saved.enable_padding(pad_id=0, length=8)
  (folder / "tokenizer.json").write_text(saved.to_str())
  (folder / "vocab.txt").unlink()


def test_a_folder_with_tokenizer_json_and_no_vocab_txt(folder):
  as_tokenizer_json(folder)
  checkpoint = hf.load_checkpoint(folder)
  assert checkpoint.vocab_file is None and checkpoint.tokenizer_file == folder / "tokenizer.json"
  tok = tokenizer.hub_tokenizer(checkpoint.tokenizer_file)
  long = tok.encode(" ".join(["film"] * 20))
  assert len(long.ids) == 22  # no truncation to 8, no padding: [CLS] 20 words [SEP]
  assert long.ids[0] == tok.token_to_id("[CLS]") and long.ids[-1] == tok.token_to_id("[SEP]")


def test_a_tokenizer_without_bert_specials_is_refused_by_name(folder, tmp_path):
  as_tokenizer_json(folder)
  data = json.loads((folder / "tokenizer.json").read_text())
  vocab = data["model"]["vocab"]
  vocab["<pad>"] = vocab.pop("[PAD]")
  data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] != "[PAD]"]
  (folder / "tokenizer.json").write_text(json.dumps(data))
  with pytest.raises(ValueError, match=r"tokenizer\.json must hold .*\[PAD\]"):
    tokenizer.hub_tokenizer(folder / "tokenizer.json")


def test_a_sentence_transformers_folder_is_read_from_its_transformer_module(folder, tmp_path):
  root = tmp_path / "st"
  shutil.copytree(folder, root / "0_Transformer")
  modules = [
    {
      "idx": 0,
      "name": "0",
      "path": "0_Transformer",
      "type": "sentence_transformers.models.Transformer",
    },
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
  ]
  (root / "modules.json").write_text(json.dumps(modules))
  checkpoint = hf.load_checkpoint(root)
  assert checkpoint.directory == root / "0_Transformer"
  assert checkpoint.vocab_file == root / "0_Transformer" / "vocab.txt"
  config = hf.config_from_hf(checkpoint.config)
  assert set(hf.params_from_hf(checkpoint.state_dict, config)) == {"backbone", "mlm_head"}


def test_weights_in_pytorch_model_bin_only_name_the_file_and_the_conversion(folder):
  (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
  with pytest.raises(
    FileNotFoundError, match=r"lacks model\.safetensors.*pytorch_model\.bin.*safe"
  ):
    hf.load_checkpoint(folder)


def test_damaged_files_are_named(folder):
  weights = folder / "model.safetensors"
  weights.write_bytes(weights.read_bytes()[:-100])  # a download cut short
  with pytest.raises(ValueError, match=r"model\.safetensors cannot be read.*Download or copy"):
    hf.load_checkpoint(folder)
  hf.load_checkpoint(folder, weights=False)  # the config alone still reads
  (folder / "config.json").write_text('{"model_type": "bert", ')
  with pytest.raises(ValueError, match=r"config\.json is no valid JSON.*damaged"):
    hf.load_checkpoint(folder, weights=False)


def test_preserving_upcycling_refuses_what_it_cannot_preserve(folder):
  checkpoint = hf.load_checkpoint(folder)
  with pytest.raises(ValueError, match=r"form='preserving' needs .*mobius_key_value"):
    hf.upcycle(
      checkpoint.state_dict, checkpoint.config, form="preserving", mobius_key_value="elementwise"
    )
  with pytest.raises(ValueError, match=r"form='nonsense': use one of \('copied', 'preserving'\)"):
    hf.upcycle(checkpoint.state_dict, checkpoint.config, form="nonsense")


def test_preserving_upcycling_of_a_random_bert_keeps_its_outputs(folder):
  from mobius_jax.models import Transformer

  checkpoint = hf.load_checkpoint(folder)
  source_config = hf.config_from_hf(checkpoint.config)
  source = hf.params_from_hf(checkpoint.state_dict, source_config)["backbone"]
  ids = np.array([[2, 5, 9, 11, 7, 3, 0, 0], [2, 8, 6, 4, 6, 12, 10, 3]])
  mask = (ids > 0).astype(np.int32)
  expected = Transformer(source_config, with_pooler=False).apply(
    {"params": source}, ids, attention_mask=mask
  )
  for layout in ("framed", "all", "top"):
    config, params = hf.upcycle(
      checkpoint.state_dict, checkpoint.config, layout=layout, form="preserving"
    )
    assert isinstance(config, ModelConfig) and "M" in config.layer_kinds
    model = Transformer(config, with_pooler=False)
    out = model.apply({"params": params["backbone"]}, ids, attention_mask=mask)
    real = mask[..., None]
    np.testing.assert_allclose(out.sequence * real, expected.sequence * real, atol=1e-5)
