"""The corpora and tasks by name (`train.data.tasks`): unknown names list the known ones, the
tasks' metrics are known metrics, and the texts come out cleaned."""

import pytest

from train.core import metrics
from train.data import offline, tasks


def test_unknown_names_list_the_known_ones():
  with pytest.raises(ValueError, match=r"Unknown task 'glue_sst2'; known: \('cola', 'sst2'"):
    tasks.get_task("glue_sst2")
  with pytest.raises(ValueError, match=r"Unknown pretraining corpus 'c5'; known: \('c4', 'wiki"):
    tasks.get_corpus("c5")
  assert tasks.get_task("rte") is tasks.TASKS["rte"]
  assert tasks.get_corpus("wikitext2").offline and not tasks.get_corpus("c4").offline


def test_every_task_has_known_metrics_and_the_offline_ones_offline_data():
  assert tasks.GLUE_TASKS == ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli")
  for task in tasks.TASKS.values():
    assert task.metrics and set(task.metrics) <= set(metrics.METRICS), task.name
    assert task.is_regression == (task.num_labels == 1)
    if task.offline:
      assert task.dataset in offline.OFFLINE_DATASETS and task.test_split == "test"
  assert [t.name for t in tasks.TASKS.values() if t.is_regression] == ["stsb", "ratings"]


def test_texts_are_decoded_and_wikitext_detokenised():
  assert tasks.as_text(b"caf\xc3\xa9") == "café" and tasks.as_text(3) == "3"
  assert tasks.clean_wikitext(" the 1 @,@ 000 @-@ year <unk> . ") == " the 1,000-year [UNK] . "
  corpus = tasks.get_corpus("wikitext2")
  source = [{"text": b" a @-@ b "}, {"text": b" <unk> "}, {"text": b"c"}]
  assert list(corpus.texts(source)) == [" a-b ", " [UNK] ", "c"]
  assert list(corpus.texts(source, limit=2)) == [" a-b ", " [UNK] "]
  assert list(tasks.get_corpus("c4").texts([{"text": "x @-@ y"}])) == ["x @-@ y"]
