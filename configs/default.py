"""The CPU default: the paper's pipeline in miniature, on the offline data (the main job).

Pretrains a tiny BERT (or, with `--config.model=mobius_bert-tiny`, a tiny MöbiusBERT) on
WikiText-2 past the unigram stage of masked-LM pretraining; `get_config("finetune")` fine-tunes
it on the Rotten Tomatoes polarity task. `python -m train.reproduce` runs both for both models.
Every key is described in `train/core/config.py`; the values set here were chosen on validation
data (docs/results.md, "The main job's settings").

  python -m train.main --config configs/default.py --workdir /tmp/bert-tiny
  python -m train.main --config configs/default.py:finetune --workdir /tmp/polarity \
    --config.init_from=/tmp/bert-tiny
  python -m train.main --config configs/default.py:checkpoint --workdir /tmp/minilm-polarity
"""

import ml_collections

from train.core.config import defaults


def get_config(mode: str = "pretrain") -> ml_collections.ConfigDict:
  """The main job's pretraining config, or with `mode="finetune"` its fine-tuning config."""
  if mode == "finetune":
    return finetune_config()
  if mode == "checkpoint":
    return checkpoint_config()
  if mode != "pretrain":
    raise ValueError(
      f"configs/default.py:{mode}: use 'pretrain' (the default), 'finetune' or 'checkpoint'."
    )
  config = defaults()
  config.corpus = "wikitext2"
  config.model = "bert-tiny"
  # Dropout off for pretraining: the model is far from overfitting WikiText-2 in 2,000 steps.
  config.model_overrides = ml_collections.ConfigDict(
    {"hidden_dropout": 0.0, "attention_dropout": 0.0}
  )
  # At the same compute, twice as many rows of half the length trained further.
  config.max_len = 64
  config.mask_rate = 0.3  # measured at 15 % as well (train.core.experiment.EVAL_MASK_RATE)
  config.batch_size = 32
  config.num_train_steps = 2000
  config.optimizer.learning_rate = 3e-3
  config.optimizer.warmup_ratio = 0.2
  config.optimizer.weight_decay = 1e-5
  return config


def finetune_config() -> ml_collections.ConfigDict:
  """Fine-tuning on the polarity task (set `init_from` to the pretraining workdir)."""
  config = get_config()
  config.mode = "finetune"
  config.model_overrides = ml_collections.ConfigDict()  # the preset's dropout (0.1)
  config.mask_rate = 0.15  # unused: no masking in fine-tuning
  config.num_train_steps = 800
  config.optimizer.learning_rate = 1e-3
  config.optimizer.weight_decay = 1e-2
  config.optimizer.warmup_ratio = 0.1
  config.length_buckets = (16, 32)  # the same results as padding to 64, in less time
  return config


def checkpoint_config() -> ml_collections.ConfigDict:
  """Fine-tuning a real pretrained checkpoint (all-MiniLM-L6-v2) on the polarity task: the
  model, its dropout and its tokenizer come from the checkpoint (`train.reproduce --init_from
  minilm` runs it as is and upcycled). BERT's usual fine-tuning rate (5e-5) and warm-up,
  not searched on this task; 200 steps of 16 sentences, what a 2-core machine affords for the
  study's 40 runs (docs/results.md)."""
  config = finetune_config()
  config.init_from = "minilm"
  config.model_overrides = ml_collections.ConfigDict()
  config.batch_size = 16
  config.num_train_steps = 200
  config.optimizer.learning_rate = 5e-5
  config.optimizer.warmup_ratio = 0.1
  config.optimizer.weight_decay = 1e-2
  return config
