"""Baselines without a Transformer for a classification task's real splits: the floor to beat.

`majority`: always the training split's most frequent label. `bag_of_words`: TF-IDF unigrams
(sublinear tf) and logistic regression, fitted on the training split, its inverse regularisation
C chosen on the validation split from a small grid, then scored once on the test split.

  from train.studies import baselines
  from train.data import tasks
  print(baselines.classification_baselines(tasks.get_task("polarity")))
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from train.core import metrics
from train.data import tasks
from train.data.offline import data_source

C_GRID = (0.25, 1.0, 4.0, 16.0)
# Ample: lbfgs takes under 20 iterations on polarity. Not converging raises ConvergenceWarning
# as an error rather than reporting an unfitted model's score.
MAX_ITER = 1000
# Joins a pair's texts; unigram features ignore it, but it keeps the last word of one text from
# running into the first word of the next.
PAIR_SEPARATOR = "\n"


def read_split(
  task: tasks.Task, split: str, data_dir: str | None = None
) -> tuple[list[str], np.ndarray]:
  """The texts (a pair's joined by `PAIR_SEPARATOR`) and integer labels of a task's split."""
  source = data_source(task.dataset, split, data_dir, task.offline)
  texts, labels = [], []
  for i in range(len(source)):
    record = source[i]
    texts.append(PAIR_SEPARATOR.join(tasks.as_text(record[key]) for key in task.text_keys))
    labels.append(int(record[task.label_key]))
  return texts, np.array(labels, dtype=np.int64)


def _fit(features, labels: np.ndarray, c: float) -> LogisticRegression:
  with warnings.catch_warnings():
    warnings.simplefilter("error", ConvergenceWarning)
    return LogisticRegression(C=c, max_iter=MAX_ITER).fit(features, labels)


def classification_baselines(
  task: tasks.Task, *, grid: Sequence[float] = C_GRID, data_dir: str | None = None
) -> dict:
  """The majority-class and bag-of-words baselines' accuracies on `task`'s evaluation splits.

  Model selection never sees the test split: C is the grid's best on validation (ties go to the
  smallest C, the strongest regularisation), and test is scored once, with that C.

  Args:
    task: a classification task; its first `eval_splits` entry is the validation split.
    grid: the values of C (logistic regression's inverse regularisation) to choose from.
    data_dir: the TFDS data folder; None for the default (offline tasks build theirs).

  Returns:
    {"majority": {"label", "validation", "test"}, "bag_of_words": {"C", "validation", "test",
    "grid": {C: validation accuracy}}}; the test accuracies are None where the task has no
    test split with public labels.

  Raises:
    ValueError: `task` is a regression task, or `grid` is empty.
  """
  if task.is_regression:
    raise ValueError(
      f"Task {task.name!r} is a regression task; the baselines here are for classification."
    )
  if not grid:
    raise ValueError("The grid of C values is empty.")
  splits = {"validation": task.eval_splits[0], "test": task.test_split}
  train_texts, train_labels = read_split(task, task.train_split, data_dir)
  evaluation = {
    name: read_split(task, split, data_dir) for name, split in splits.items() if split is not None
  }

  label = int(np.bincount(train_labels).argmax())
  majority = {"label": label, "validation": None, "test": None}
  for name, (_, labels) in evaluation.items():
    majority[name] = metrics.accuracy(labels, np.full_like(labels, label))

  vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 1))
  train_features = vectorizer.fit_transform(train_texts)
  features = {name: vectorizer.transform(texts) for name, (texts, _) in evaluation.items()}
  validation_labels = evaluation["validation"][1]
  models, scores = {}, {}
  for c in sorted(float(c) for c in grid):
    models[c] = _fit(train_features, train_labels, c)
    scores[c] = metrics.accuracy(validation_labels, models[c].predict(features["validation"]))
  best = max(scores, key=scores.get)  # the first, so the smallest C, of equal scores
  bag_of_words = {"C": best, "validation": scores[best], "test": None, "grid": scores}
  if "test" in evaluation:
    bag_of_words["test"] = metrics.accuracy(
      evaluation["test"][1], models[best].predict(features["test"])
    )
  return {"majority": majority, "bag_of_words": bag_of_words}
