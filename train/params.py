"""Prints the encoder parameters of every preset, in millions, as a Markdown table.

python -m train.params
"""

from mobius_jax.models import MODELS, SIZES, ModelConfig
from mobius_jax.models.params import count_encoder_params
from train import cli, markdown


def preset_table() -> str:
  """Millions of encoder parameters (with BERT's pooler) per preset: a row per size."""
  rows = [
    [
      size,
      *(f"{count_encoder_params(ModelConfig.preset(f'{m}-{size}')) / 1e6:.1f}M" for m in MODELS),
    ]
    for size in SIZES
  ]
  return markdown.table(["size", *MODELS], rows)


def main():
  print(preset_table())


if __name__ == "__main__":
  cli.run(main)
