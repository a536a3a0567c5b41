"""MöbiusBERT-base pretrained on C4 with the recipe of `configs/bert_base_c4.py`."""

from configs import bert_base_c4


def get_config():
  config = bert_base_c4.get_config()
  config.model = "mobius_bert-base"
  return config
