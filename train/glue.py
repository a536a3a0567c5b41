"""The GLUE suite for one pretrained model, as MosaicBERT ran it, and its GLUE average.

  python -m train.glue --init_from runs/mobius-bert --workdir runs/mobius-bert-glue
  python -m train.glue --init_from hf:/models/bert-base-uncased --workdir runs/bert-glue \
    --tasks mnli,rte --seeds 19,8364 --override dtype=float32

Runs (or resumes) every task and seed of `--config` (MosaicBERT's recipe, `configs/glue.py:
suite`), MNLI first, and writes WORKDIR/glue.md and glue.json (`train.studies.glue_suite`).
Needs the TFDS `glue/<task>` data prepared as array_record.
"""

import jax
from absl import flags
from ml_collections import config_flags

from train import cli
from train.studies import glue_suite

_SUITE = config_flags.DEFINE_config_file(
  "config", "configs/glue.py:suite", "The suite: every task's config, seeds, MNLI starts."
)
_INIT_FROM = flags.DEFINE_string("init_from", None, "A pretraining workdir, or hf:DIR.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the suite's runs go.")
_TASKS = flags.DEFINE_list("tasks", None, "Tasks to run (default all 8 of MosaicBERT's).")
_SEEDS = flags.DEFINE_list("seeds", None, "Seeds for every task (default: each task's own).")
_OVERRIDE = flags.DEFINE_multi_string("override", [], "KEY=VALUE for every task's config.")
flags.mark_flags_as_required(["init_from", "workdir"])


def main():
  suite = _SUITE.value
  result = glue_suite.run_suite(  # every task's config is checked before the first run
    suite,
    _INIT_FROM.value,
    _WORKDIR.value,
    tasks=_TASKS.value,
    seeds=[int(s) for s in _SEEDS.value] if _SEEDS.value else None,
    overrides=cli.parse_overrides(_OVERRIDE.value),
  )
  if jax.process_index() == 0:
    print(glue_suite.report(result, len(suite.order)))


if __name__ == "__main__":
  cli.run(main)
