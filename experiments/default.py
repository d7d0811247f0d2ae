"""python -m cl_research.run --config default

  python -m cl_research.run --config default:smoke       # seconds, for tests

One LeNets++ run with 2-D features, softmax + center loss (lambda 0.01, alpha 0.5), with
the Caffe MNIST solver's settings (SGD 0.01, momentum 0.9, weight decay 5e-4, 10k steps
of 128). `--config.num_steps=1000` gives a quick look.
"""

from cl_research import configs

SUMMARY = 'one full-width LeNets++ run, lambda 0.01, 2-D features: ~50 min on CPU'
ARGS = {'smoke': 'seconds, a tiny net (tests)'}


def get_config(arg=None):
  tokens = configs.parse_arg(arg, ARGS)
  config = configs.digits_config()
  if 'smoke' in tokens:
    configs.apply_smoke(config)
  return config
