"""python -m cl_research.run --config fig5

  python -m cl_research.run --config fig5:fashion_mnist
  python -m cl_research.run --config fig5:cpu            # the 2-core CPU budget
  python -m cl_research.run --config fig5:fashion_mnist,smoke   # seconds, for tests

ECCV16 Fig. 5 with the LFW protocol on the test split (6,000 pairs, cosine similarity,
10-fold threshold): (a) verification accuracy vs lambda over the paper's 12 points at
alpha 0.5, (b) vs alpha over 12 points at lambda 0.003; writes `fig5.png`. 23 runs (one
is shared). The paper used face features of 512 dims; here the LeNets++ feature is 2-D
as in its Fig. 2/3 (set `--config.sweep.feature_size='(D,)'` and the same for
`sweep_extra` to change it). Default: the paper's net and Caffe solver.
"""

from cl_research import configs
from cl_research.outputs import figures

SUMMARY = 'ECCV16 Fig. 5, 23 runs over lambda and alpha: ~19 h on CPU, :cpu ~8 min'
ARGS = configs.FIGURE_ARGS


def get_config(arg=None):
  config = configs.figure_config(arg, 'fig5')
  config.sweep.lam = figures.FIG5_LAMBDAS
  config.sweep.alpha = (figures.FIG5_FIXED_ALPHA,)
  config.sweep.feature_size = (2,)
  config.sweep_extra.lam = (figures.FIG5_FIXED_LAMBDA,)
  config.sweep_extra.alpha = figures.FIG5_ALPHAS
  config.sweep_extra.feature_size = (2,)
  config.sweep_extra.seed = (0,)
  return config
