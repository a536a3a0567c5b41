"""Fine-tuning on a GLUE task from a pretraining run, with MosaicBERT's per-task recipe.

Pass the task after a colon; `init_from` is the pretraining workdir (or "hf:DIR"):

  python -m train.main --config configs/glue.py:rte --workdir /tmp/rte \
    --config.init_from=/runs/mobius-bert-base --config.model=mobius_bert-base

`configs/glue.py:suite` is the whole suite (every task's config, its seeds, the tasks that start
from the MNLI run), which `python -m train.glue` runs to compute MosaicBERT's GLUE average.
Needs the TFDS `glue/<task>` data prepared as array_record (`tfds build glue/<task>
--file_format=array_record`).

Every value comes from MosaicBERT (github.com/mosaicml/examples, `examples/benchmarks/bert/`):
  * per task (`TASKS`): `src/glue/finetuning_jobs.py`, each task's job class: `lr=…` and
    `weight_decay=…` of its `DecoupledAdamW`, the `max_duration` (epochs) and `batch_size`
    defaults; `betas=(0.9, 0.98)`, `eps=1.0e-06` and `max_sequence_length=256` in every class;
  * seeds (`SEEDS`), the MNLI start of RTE, MRPC and STS-B (`FROM_MNLI`), the schedule
    (`linear_decay_with_warmup`, `t_warmup: 0.06dur`, `alpha_f: 0.0`) and no gradient
    clipping (no `gradient_clipping` algorithm): `yamls/finetuning/glue/hf-bert-base-uncased.yaml`
    and `mosaic-bert-base-uncased.yaml`, and `glue.py` (`round_2_task_names`);
  * STS-B in float32: its job class sets `self.precision = 'fp32'`.
WNLI is not part of MosaicBERT's suite (no job class), so it has no recipe here.
"""

import dataclasses

import ml_collections

from configs import default


@dataclasses.dataclass(frozen=True)
class Recipe:
  learning_rate: float
  weight_decay: float  # composer's decoupled decay: the fraction lost per step at the peak rate
  epochs: int
  batch_size: int
  train_examples: int  # the TFDS `glue/<task>` train split, to turn epochs into steps


TASKS = {
  "mnli": Recipe(5e-5, 5e-6, 3, 48, 392_702),
  "qqp": Recipe(3e-5, 3e-6, 5, 16, 363_846),
  "qnli": Recipe(1e-5, 1e-6, 10, 16, 104_743),
  "sst2": Recipe(3e-5, 3e-6, 3, 16, 67_349),
  "cola": Recipe(5e-5, 5e-6, 10, 32, 8_551),
  "rte": Recipe(1e-5, 1e-5, 3, 16, 2_490),  # weight decay = lr here, lr / 10 elsewhere
  "mrpc": Recipe(8e-5, 8e-6, 10, 32, 3_668),
  "stsb": Recipe(3e-5, 3e-6, 10, 32, 5_749),
}
_FIVE = (19, 8364, 717, 10536, 90166)
SEEDS = {"mnli": _FIVE[:1], "qqp": _FIVE[:1], "qnli": _FIVE[:1], "sst2": _FIVE[:3]}
SEEDS |= {"cola": _FIVE[:4], "rte": _FIVE, "mrpc": _FIVE, "stsb": _FIVE}
FROM_MNLI = ("rte", "mrpc", "stsb")  # fine-tuned from the MNLI run (its first seed)


def get_config(task: str = "rte") -> ml_collections.ConfigDict:
  """The fine-tuning config of `task`, or with `task="suite"` the whole suite's."""
  if task == "suite":
    return suite_config()
  if task not in TASKS:
    raise ValueError(f"{task!r} has no MosaicBERT GLUE recipe; the suite is {tuple(TASKS)}.")
  recipe = TASKS[task]
  config = default.finetune_config()
  config.task = task
  config.model = "bert-base"  # dropout 0.1 (HF BertConfig's, which the hf_bert yaml keeps)
  config.max_len = 256
  config.length_buckets = (32, 64, 128, 256)  # pad each batch to the shortest that holds it
  config.batch_size = recipe.batch_size
  config.eval_batch_size = 128
  batches_per_epoch = -(-recipe.train_examples // recipe.batch_size)  # drop_last=False
  config.num_train_steps = recipe.epochs * batches_per_epoch
  config.optimizer.learning_rate = recipe.learning_rate
  config.optimizer.weight_decay = recipe.weight_decay
  config.optimizer.weight_decay_scaling = "schedule"
  config.optimizer.no_decay = ("coefficients",)  # MosaicBERT decays all; Möbius maps: never
  config.optimizer.warmup_ratio = 0.06
  config.optimizer.schedule = "linear"
  config.optimizer.final_rate = 0.0
  config.optimizer.b1, config.optimizer.b2, config.optimizer.eps = 0.9, 0.98, 1e-6
  config.optimizer.grad_clip = 0.0
  config.dtype = "float32" if task == "stsb" else "bfloat16"
  config.seed = SEEDS[task][0]
  config.log_every_steps = 100
  config.checkpoint_every_steps = 2000
  config.keep_checkpoints = 1
  return config


def suite_config() -> ml_collections.ConfigDict:
  """The suite: `order` (the tasks), `tasks` (each one's config), `seeds`, `from_mnli`."""
  suite = ml_collections.ConfigDict()
  suite.order = tuple(TASKS)
  suite.tasks = ml_collections.ConfigDict({task: get_config(task) for task in TASKS})
  suite.seeds = ml_collections.ConfigDict(SEEDS)
  suite.from_mnli = FROM_MNLI
  return suite
