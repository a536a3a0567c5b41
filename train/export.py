"""Exports a training run as a transformers model folder (`mobius_jax.models.export`).

  python -m train.export --workdir runs/pretrain --out exported/mobius_bert-tiny
  python -m train.export --workdir runs/finetune --out DIR --step 200

The folder holds the model with its head (the masked-LM head of a pretraining run, the
classifier of a fine-tuning run), the run's tokenizer, and a model card from the run's
config.json and summary.json. transformers loads it offline:
`AutoModelForMaskedLM.from_pretrained(DIR, trust_remote_code=True)` (a model without Möbius
layers needs no remote code: it is written as transformers' own BERT or RoFormer).
"""

from absl import flags

from train import cli
from train.core.export import export_run

_WORKDIR = flags.DEFINE_string("workdir", None, "A pretraining or fine-tuning run's workdir.")
_OUT = flags.DEFINE_string("out", None, "The folder to write.")
_STEP = flags.DEFINE_integer("step", None, "The checkpoint step; default the latest.")
flags.mark_flags_as_required(["workdir", "out"])


def main():
  out = export_run(_WORKDIR.value, _OUT.value, _STEP.value)
  print(f"Wrote {out}; load it with transformers' from_pretrained({str(out)!r}).")


if __name__ == "__main__":
  cli.run(main)
