"""python -m cl_research.run --config default

  python -m cl_research.run --config default:smoke       # seconds, for tests

One LeNets++ run with 2-D features, softmax + center loss (lambda 0.01, alpha 0.5).

Settings follow the Caffe MNIST solver (SGD 0.01, momentum 0.9, wd 5e-4, 10k steps,
batch 128). On 2 CPU cores the full-width net runs a few hundred images/s, so this
takes about an hour; `--config.num_steps=1000` gives a quick look.
"""

from cl_research import configs


def get_config(arg=None):
  tokens = configs.parse_arg(arg, {'smoke'})
  config = configs.base_config()
  if 'smoke' in tokens:
    configs.apply_smoke(config)
  return config
