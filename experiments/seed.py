"""python -m cl_research.run --config seed

  python -m cl_research.run --config seed:smoke         # seconds, for tests

The Keras snippet this project grew from, reproduced: small CNN, Adam-learned centers.

Model: one 2x2 conv with 10 filters (ReLU), 2x2 max-pool, a 32-unit ReLU feature layer,
softmax classifier. Centers are a learned table (Keras `Embedding`) updated through the
gradient by Adam, like the network. The snippet's loss weights 1 : 0.2 on a per-sample
`sum (x - c)^2` equal lambda = 0.4 in this project's convention (see
cl_research/losses.py). The snippet's conv activation is not recorded; ReLU is assumed.

Measured here (bundled digits, 300 steps): lambda 0.4 collapses the ReLU features
(softmax loss stuck near 2.2, test accuracy 0.20) while lambda 0 reaches 0.93, with
centers started at zero or at Keras' +-0.05: the trivial solution of center loss with a
ReLU feature layer and centers learned by the same optimizer. A sweep over
`sweep.lam` and `centers.*` is the way to study it.
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
  config.centers.init_scale = 0.05  # Keras Embedding's default uniform initializer
  config.batch_size = 128
  config.num_steps = 2000
  if 'smoke' in tokens:
    configs.apply_smoke(config)
  return config
