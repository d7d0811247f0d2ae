"""python -m cl_research.run --config seed

  python -m cl_research.run --config seed:smoke         # seconds, for tests

The Keras snippet this project grew from, reproduced: small CNN, Adam-learned centers.

Model: one 2x2 conv with 10 filters (ReLU), 2x2 max-pool, a 32-unit ReLU feature layer,
softmax classifier. Centers are a learned table (Keras `Embedding`) updated through the
gradient by Adam, like the network. The snippet's loss weights 1 : 0.2 on a per-sample
`sum (x - c)^2` equal lambda = 0.4 in this project's convention (see
cl_research/losses.py). The snippet's conv activation is not recorded; ReLU is assumed.
"""

from cl_research import configs


def get_config(arg=None):
  tokens = configs.parse_arg(arg, {'smoke'})
  config = configs.base_config()
  config.model.name = 'seed_cnn'
  config.sweep.lam = (0.4,)
  config.sweep.feature_size = (32,)
  config.optimizer.name = 'adam'
  config.optimizer.learning_rate = 1e-3
  config.optimizer.weight_decay = 0.0
  config.optimizer.lr_decay_at = ()
  config.centers.mode = 'gradient'
  config.centers.optimizer = 'adam'
  config.centers.learning_rate = 1e-3
  config.batch_size = 128
  config.num_steps = 2000
  if 'smoke' in tokens:
    configs.apply_smoke(config)
  return config
