"""python -m cl_research.run --config seed

  python -m cl_research.run --config seed:smoke         # seconds, for tests

A Keras-style center-loss setup: a small CNN, centers learned by Adam.

Model: `Conv2D(10, (2, 2))` with no activation (Keras' default is linear), 2x2
max-pool, a 32-unit ReLU feature layer, softmax classifier. Centers are a learned table
(Keras `Embedding`) updated through the gradient by Adam, like the network. The
snippet's loss weights 1 : 0.2 on a per-sample `sum (x - c)^2` equal lambda = 0.4 in
this project's convention (cl_research/losses.py).

What it shows: center loss's trivial solution. With a ReLU feature layer and centers
learned by the same optimizer, lambda 0.4 drives every feature and center to zero
(softmax loss stays at ln 10, test accuracy at chance), while lambda 0 learns the digits
(`--config.sweep.lam='(0.0, 0.4)'` on full MNIST: test accuracy 0.114 against 0.966).
"""

from cl_research import configs

SUMMARY = 'a Keras-style center-loss setup: small CNN, Adam-learned centers: ~1 min'
ARGS = {'smoke': 'seconds (tests)'}


def get_config(arg=None):
  tokens = configs.parse_arg(arg, ARGS)
  config = configs.digits_config()
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
