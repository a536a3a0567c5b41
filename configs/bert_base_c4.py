"""BERT-base pretrained on C4 with the MosaicBERT recipe the paper used.

Sequence length 128, global batch 4096, 70,000 steps, decoupled AdamW (lr 5e-4, betas 0.9 and
0.98, eps 1e-6, weight decay 1e-5), 6 % linear warm-up then linear decay, 30 % masking, the
bert-base-uncased vocabulary, bfloat16 compute. Needs TFDS `c4/en` prepared as array_record
(`tfds build c4/en --file_format=array_record`) and bert-base-uncased's vocab.txt:

  python -m train.main --config configs/bert_base_c4.py --workdir gs://…/bert-base \
    --config.tokenizer.vocab_file=/path/to/bert-base-uncased/vocab.txt
"""

from configs import default


def get_config():
  config = default.get_config()
  config.model = "bert-base"
  config.corpus = "c4"
  config.tokenizer.vocab_file = ""  # set to bert-base-uncased's vocab.txt (30,522 tokens)
  config.tokenizer.vocab_size = 30_522  # only used if no vocab_file is given
  config.tokenizer.train_examples = 1_000_000  # C4 documents to train that vocabulary on
  config.max_len = 128
  config.packing = False  # C4 documents are truncated to 128 tokens, as in MosaicBERT
  config.mask_rate = 0.3  # MosaicBERT's rate (the paper's range: 15–30 %)
  config.batch_size = 4096
  config.eval_batch_size = 1024
  config.eval_examples = 65_536
  config.num_train_steps = 70_000
  config.optimizer.learning_rate = 5e-4
  config.optimizer.warmup_ratio = 0.06
  config.optimizer.schedule = "linear"
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.98
  config.optimizer.eps = 1e-6
  config.optimizer.weight_decay = 1e-5
  config.optimizer.grad_clip = 1.0
  config.dtype = "bfloat16"
  config.log_every_steps = 100
  config.checkpoint_every_steps = 3500
  config.keep_checkpoints = 3
  return config
