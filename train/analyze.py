"""The paper's analysis of a trained model, from its workdir (`train.studies.analysis`).

  python -m train.analyze --workdir runs/reproduce/seed0/mobius_bert-tiny/finetune
  python -m train.analyze --workdir DIR --out DIR --sentence "A film to remember." --tol 1e-2

Writes report.json, report.md, maps.npz and the figures into --out (default WORKDIR/analysis).
"""

import pathlib

from absl import flags

from train import cli
from train.core.experiment import restore_run
from train.studies import analysis

_WORKDIR = flags.DEFINE_string("workdir", None, "A pretraining or fine-tuning run's workdir.")
_OUT = flags.DEFINE_string("out", None, "Where to write the results; default WORKDIR/analysis.")
_STEP = flags.DEFINE_integer("step", None, "The checkpoint step; default the latest.")
_SENTENCE = flags.DEFINE_string(
  "sentence", analysis.SENTENCE, "The sentence of the attention heat-maps."
)
_NUM_EXAMPLES = flags.DEFINE_integer(
  "num_examples", 64, "Validation examples for the attention statistics."
)
_TOL = flags.DEFINE_float("tol", 1e-3, "Tolerance of the map classification (classify's tol).")
_DET_TOL = flags.DEFINE_float("det_tol", 0.1, "|det| within this of 1 counts as near 1.")
_NEAR_ZERO = flags.DEFINE_float(
  "near_zero", 0.1, "An attention weight below this fraction of uniform counts as near zero."
)
flags.mark_flag_as_required("workdir")


def main():
  out = pathlib.Path(_OUT.value or pathlib.Path(_WORKDIR.value) / "analysis")
  report = analysis.analyze(
    restore_run(_WORKDIR.value, _STEP.value),
    out,
    sentence=_SENTENCE.value,
    num_examples=_NUM_EXAMPLES.value,
    tol=_TOL.value,
    det_tol=_DET_TOL.value,
    near_zero=_NEAR_ZERO.value,
  )
  print(f"Wrote {', '.join(report['figures'].values())}, report.json, report.md to {out}")
  print((out / "report.md").read_text().split("\n## Attention")[0])


if __name__ == "__main__":
  cli.run(main)
