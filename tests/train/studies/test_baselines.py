"""Baselines on in-memory splits (C chosen on validation, the training majority) and on polarity."""

import pytest

from train.data import tasks
from train.studies import baselines

ConvergenceWarning = pytest.importorskip("sklearn.exceptions").ConvergenceWarning

TOY = tasks.Task("toy", "toy", ("sentence",), "label", 2, ("accuracy",), test_split="test")


def _records(texts_and_labels, key="sentence"):
  """A fake TFDS data source (`len` and `__getitem__`): records with bytes texts, as TFDS's."""
  return [{key: text.encode(), "label": label} for text, label in texts_and_labels]


@pytest.fixture
def toy_splits(monkeypatch):
  """Train: 30 "bad" reviews (label 0) and 10 "good" ones (1). Validation, 15 "good" and 5
  "bad", has labels that follow the words; test, with the same texts, is all 0. So a strongly
  regularised model, which predicts train's majority 0 everywhere, is worst on validation but
  best on test."""
  fillers = ["plot", "cast", "score", "pace", "ending"]
  train = [(f"bad {fillers[i % 5]}", 0) for i in range(30)]
  train += [(f"good {fillers[i % 5]}", 1) for i in range(10)]
  good, bad = [f"good {filler}" for filler in fillers], [f"bad {filler}" for filler in fillers]
  validation = [(text, 1) for text in good * 3] + [(text, 0) for text in bad]
  test = [(text, 0) for text in good * 3 + bad]
  splits = {
    "train": _records(train),
    "validation": _records(validation),
    "test": _records(test),
  }
  read = []

  def data_source(dataset, split, data_dir, offline):
    read.append((dataset, split, data_dir, offline))
    return splits[split]

  monkeypatch.setattr(baselines, "data_source", data_source)
  return read


def test_c_is_chosen_on_validation_and_test_scored_once(toy_splits):
  result = baselines.classification_baselines(TOY, grid=(1000, 0.001))
  bag_of_words = result["bag_of_words"]
  # 0.001 predicts 0 everywhere: right on a quarter of validation, on all of test; 1000 follows
  # the words.
  assert bag_of_words["grid"] == {0.001: 0.25, 1000.0: 1.0}
  assert bag_of_words["C"] == 1000.0
  assert bag_of_words["validation"] == 1.0
  assert bag_of_words["test"] == 0.25  # choosing C on test would have reported 1.0
  assert sorted(split for _, split, _, _ in toy_splits) == ["test", "train", "validation"]
  assert toy_splits[0] == ("toy", "train", None, False)


def test_majority_is_the_training_splits(toy_splits):
  # Train's majority is 0, validation's 1.
  majority = baselines.classification_baselines(TOY)["majority"]
  assert majority == {"label": 0, "validation": 0.25, "test": 1.0}


def test_default_grid_gives_fractions_and_ties_go_to_the_smallest_c(toy_splits):
  result = baselines.classification_baselines(TOY)
  bag_of_words = result["bag_of_words"]
  # C = 0.25 still predicts 0 everywhere; the larger three all follow the words.
  assert bag_of_words["grid"] == {0.25: 0.25, 1.0: 1.0, 4.0: 1.0, 16.0: 1.0}
  assert bag_of_words["C"] == 1.0
  values = [*bag_of_words["grid"].values(), bag_of_words["test"], *result["majority"].values()]
  assert all(0 <= value <= 1 for value in values)


def test_pairs_use_both_texts_and_no_test_split_gives_none(monkeypatch):
  # Only the second text carries the label; GLUE-like: no test split with public labels.
  task = tasks.Task("pairs", "pairs", ("premise", "hypothesis"), "label", 2, ("accuracy",))
  pairs = [("the film", "loved it", 1), ("the film", "hated it", 0)] * 10
  records = [{"premise": p.encode(), "hypothesis": h.encode(), "label": y} for p, h, y in pairs]
  monkeypatch.setattr(baselines, "data_source", lambda *args: records)
  texts, labels = baselines.read_split(task, "train")
  assert texts[:2] == ["the film\nloved it", "the film\nhated it"]
  assert list(labels[:2]) == [1, 0]
  result = baselines.classification_baselines(task)
  assert result["bag_of_words"]["validation"] == 1.0
  assert result["bag_of_words"]["test"] is None
  assert result["majority"]["test"] is None


def test_an_unconverged_fit_is_an_error(toy_splits, monkeypatch):
  monkeypatch.setattr(baselines, "MAX_ITER", 1)
  with pytest.raises(ConvergenceWarning):
    baselines.classification_baselines(TOY)


def test_refuses_regression(monkeypatch):
  monkeypatch.setattr(baselines, "data_source", pytest.fail)
  with pytest.raises(ValueError, match="'ratings' is a regression task"):
    baselines.classification_baselines(tasks.get_task("ratings"))
  with pytest.raises(ValueError, match="grid of C values is empty"):
    baselines.classification_baselines(TOY, grid=())


@pytest.mark.slow
def test_polarity():
  """The real splits (prepared from the cached wheels if need be). With the split before the
  de-duplication, TF-IDF + LR (C = 4) reached 0.786 on test."""
  result = baselines.classification_baselines(tasks.get_task("polarity"))
  print(result)
  majority, bag_of_words = result["majority"], result["bag_of_words"]
  # Train has 4285 negative and 4171 positive sentences; validation 520 and test 521 negative.
  assert majority == {"label": 0, "validation": 520 / 1057, "test": 521 / 1054}
  assert bag_of_words["validation"] == max(bag_of_words["grid"].values())
  assert 0.75 < bag_of_words["validation"] < 0.80
  assert 0.76 < bag_of_words["test"] < 0.81
