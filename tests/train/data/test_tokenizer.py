"""The tokenizer: the special ids of a BERT vocabulary, and a vocabulary trained on the training
split only (under `tfds.testing.mock_data`)."""

from tests.helpers import mock_data  # noqa: F401  (autouse: TFDS's mock data for every test here)
from train.data import tasks, tokenizer


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


def test_the_tokenizer_learns_its_vocabulary_from_the_training_split_only(tmp_path, monkeypatch):
  read, data_source = [], tokenizer.offline.data_source

  def spy(dataset, split, *args):
    read.append((dataset, split))
    return data_source(dataset, split, *args)

  monkeypatch.setattr(tokenizer.offline, "data_source", spy)
  tokenizer.load_tokenizer(corpus=tasks.get_corpus("c4"), vocab_size=200, cache_dir=tmp_path)
  assert read == [("c4/en", "train")]
