"""python -m cl_research.run --config benchmark

  python -m cl_research.run --config benchmark:cpu       # 2 CPU cores, about 47 minutes
  python -m cl_research.run --config benchmark:smoke     # seconds, for tests

The fair comparison (`cl_research/engine/benchmark.py`, the metric-learning reality
check's protocol): n-digit MNIST, 70% of the numbers train and 30% are never seen;
every loss gets the same search budget (Optuna's seeded TPE sampler, `trials` trials,
each scored by MAP@R on class-disjoint validation folds of the training numbers), then
its best setting is retrained with `seeds` seeds and tested once on the unseen numbers:
MAP@R, R-precision, precision@1, verification pairs, open-set identification.
Everything else is the same for every loss and declared here: quarter-width LeNets++,
64-D features, Adam, the steps and the batch.

  cpu     2-digit MNIST (70 training / 30 unseen numbers), softmax, softmax + center,
          CosFace, ArcFace; 2 folds, 8 trials per loss, 5 seeds
  (none)  3-digit MNIST (700 / 300), the loss family, 4 folds, 50 trials, 10 seeds
"""

import ml_collections

from cl_research import configs

SUMMARY = 'every loss tuned with the same budget on validation classes, tested on unseen ones'
ARGS = {'cpu': '2-digit MNIST, 4 losses, 2 folds x 8 trials, 5 seeds (2 CPU cores)',
        'smoke': 'seconds, a tiny net (tests)'}


def get_config(arg=None):
  tokens = configs.parse_arg(arg, ARGS)
  c = configs.digits_config()
  configs.apply_cpu(c)
  c.data.name = 'ndigit_mnist'
  c.data.num_digits = 2 if 'cpu' in tokens or 'smoke' in tokens else 3
  c.optimizer.name = 'adam'
  c.optimizer.weight_decay = 0.0
  c.sweep.feature_size = (64,)
  c.evals.retrieval = ml_collections.ConfigDict({'type': 'retrieval', 'metric': 'cosine'})
  c.analysis.baseline = ()
  c.analysis.family = ('test_map_at_r', 'test_r_precision', 'test_precision_at_1')
  c.analysis.margins.test_map_at_r = 0.01
  c.analysis.margins.test_r_precision = 0.01
  c.analysis.margins.test_precision_at_1 = 0.01
  c.benchmark = ml_collections.ConfigDict({
      'losses': ('softmax/none', 'softmax/center', 'cosface/none', 'arcface/none'),
      'folds': 4, 'trials': 50, 'seeds': tuple(range(10)),
      'search_seed': 0,  # the seed of every search run
      'sampler_seed': 0, 'split_seed': 0,
      # (low, high, 'log' | 'linear'): ranges from ../shared/spec/loss-family.md around
      # each loss's published values
      'space': ml_collections.ConfigDict({
          'learning_rate': (1e-4, 1e-2, 'log'),
          'lam': (1e-3, 1.0, 'log'), 'alpha': (0.1, 1.0, 'linear'),
          'scale': (4.0, 64.0, 'log'),
          'cosface_margin': (0.05, 0.5, 'linear'), 'arcface_margin': (0.1, 0.8, 'linear')}),
  })
  if 'cpu' in tokens:
    c.benchmark.folds, c.benchmark.trials, c.benchmark.seeds = 2, 8, (0, 1, 2, 3, 4)
    c.data.ndigit_train_images = 35_000
    c.num_steps = 1_500
  if 'smoke' in tokens:
    configs.apply_smoke(c)
    c.data.source = 'bundled'
    c.data.ndigit_train_images, c.data.ndigit_test_images = 7_000, 10_000
    c.data.num_test = 2_000
    c.benchmark.losses = ('softmax/none', 'softmax/center')
    c.benchmark.folds, c.benchmark.trials, c.benchmark.seeds = 2, 2, (0, 1)
  return c
