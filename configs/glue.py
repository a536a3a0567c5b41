"""Fine-tuning on a GLUE task (or an offline one) from a pretraining run, BERT-style.

Pass the task after a colon; `init_from` is the pretraining workdir (or "hf:DIR"):

  python -m train.main --config configs/glue.py:rte --workdir /tmp/rte \
    --config.init_from=/runs/mobius-bert-base --config.model=mobius_bert-base

Epochs follow MosaicBERT's GLUE recipe: 3 on the large tasks, 10 on the small ones; sequence
length 256, batch 32, AdamW at 2e-5 (5e-5 on the small tasks) with 6 % warm-up. Needs the TFDS
`glue/<task>` data prepared as array_record (`tfds build glue/<task> --file_format=array_record`).
"""

from configs import default

# Training examples per task, to turn epochs into steps.
TRAIN_EXAMPLES = {
  "cola": 8_551,
  "sst2": 67_349,
  "mrpc": 3_668,
  "qqp": 363_846,
  "stsb": 5_749,
  "mnli": 392_702,
  "qnli": 104_743,
  "rte": 2_490,
  "wnli": 635,
}
SMALL = ("cola", "mrpc", "stsb", "rte", "wnli")


def get_config(task: str = "rte"):
  if task not in TRAIN_EXAMPLES:
    raise ValueError(f"{task!r} is no GLUE task; GLUE's are {tuple(TRAIN_EXAMPLES)}.")
  config = default.finetune_config()
  config.task = task
  config.model = "bert-base"
  config.max_len = 256
  config.batch_size = 32
  config.eval_batch_size = 128
  epochs = 10 if task in SMALL else 3
  config.num_train_steps = epochs * TRAIN_EXAMPLES[task] // config.batch_size
  config.optimizer.learning_rate = 5e-5 if task in SMALL else 2e-5
  config.optimizer.warmup_ratio = 0.06
  config.optimizer.weight_decay = 1e-6
  config.dtype = "bfloat16"
  config.log_every_steps = 100
  config.checkpoint_every_steps = 2000
  return config
