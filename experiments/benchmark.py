"""python -m cl_research.run --config benchmark

  python -m cl_research.run --config benchmark:cpu       # 2 CPU cores: 97 min (docs/benchmark.md)
  python -m cl_research.run --config benchmark:smoke     # a minute or two, for tests

The fair comparison (`cl_research/engine/benchmark.py`, the metric-learning reality
check's protocol): n-digit MNIST, 70% of the numbers train and 30% are never seen;
every loss gets the same search budget (Optuna's multivariate TPE after declared random
startup trials, each loss and search seed its own stream, `trials` trials, each scored
by MAP@R of validation images of class-disjoint folds of the training numbers), then
each search's best setting is retrained with `seeds` seeds and tested once on the
unseen numbers: MAP@R, R-precision, precision@1, verification pairs, open-set
identification. Everything else is the same for every loss and declared here:
LeNets++, the feature size, Adam, the steps and the batch, the gradient clip on the
backbone only (its share of clipped steps is a column), a classifier over the trained
classes only.

  cpu     2-digit MNIST (70 training / 30 unseen numbers), softmax, softmax + center,
          NormFace, CosFace, ArcFace, CosFace + center; quarter-width net, 64-D, 2 folds,
          16 trials (6 random startup), 1 search seed, 10 seeds
  (none)  3-digit MNIST (700 / 300), the whole loss family; the full-width net, 128-D,
          10 epochs, 4 folds, 50 trials (10 startup), 3 search seeds, 10 seeds: an
          accelerator's budget (its cost in runs: docs/benchmark.md)
"""

import ml_collections

from cl_research import configs

SUMMARY = 'every loss tuned with the same budget on validation classes, tested on unseen ones'
ARGS = {'cpu': '2-digit MNIST, 6 losses, 2 folds x 16 trials, 10 seeds (2 CPU cores)',
        'smoke': 'a minute or two, a tiny net (tests)'}

# Every head with and without its regularizers, as the field compares them.
FAMILY = ('softmax/none', 'softmax/center', 'normface/none', 'sphereface/none',
          'cosface/none', 'arcface/none', 'combined/none', 'cosface/center',
          'arcface/center', 'softmax/contrastive_center', 'softmax/ring', 'softmax/git',
          'softmax/island', 'arcface/normalized_center')
CPU_LOSSES = ('softmax/none', 'softmax/center', 'normface/none', 'cosface/none',
              'arcface/none', 'cosface/center')


def get_config(arg=None):
  tokens = configs.parse_arg(arg, ARGS)
  c = configs.digits_config()
  c.data.name = 'ndigit_mnist'
  c.data.num_digits = 3
  c.data.ndigit_train_images = 100_000
  c.data.ndigit_test_images = 10_000  # of the 300 unseen numbers: 100 each (the floor)
  c.data.ndigit_validation_images = 35_000  # 50 of each training number
  c.optimizer.name = 'adam'
  c.optimizer.weight_decay = 0.0
  c.optimizer.grad_clip_norm = 5.0
  c.optimizer.clip_scope = 'backbone'  # the classifier's gradient grows with s: unclipped
  c.model.classifier_classes = 'trained'
  c.batch_size = 128
  c.num_steps = 7_800  # 10 epochs of the 100,000 training images
  c.log_every = 100
  c.sweep.feature_size = (128,)
  c.evals.retrieval = ml_collections.ConfigDict({'type': 'retrieval', 'metric': 'cosine'})
  # the non-mated probes of open-set identification: 12 unknown numbers x 100 images
  # >= 1,000, so DIR at FPIR 1e-2 can be estimated (10 false accepts allowed)
  c.evals.openset.unknown_classes = 12
  c.analysis.baseline = ()
  c.benchmark = ml_collections.ConfigDict({
      'losses': FAMILY,
      'baseline': 'softmax/none',  # every loss is compared with it
      'focus': 'softmax/center',  # the loss the question is about: compared with every other
      'folds': 4, 'trials': 50, 'startup_trials': 10,
      'search_seeds': (0, 1, 2),  # each a whole search per loss, its own sampler stream
      'trial_seeds': (0,),  # training seeds a trial's score averages over
      'seeds': tuple(range(10)),  # of the finals
      'sampler_seed': 0, 'split_seed': 0,
      # equivalence margin: this share of the compared-against loss's error (1 - metric)
      'equivalence': 0.1,
      # (low, high, 'log' | 'linear' | 'int') of every number a loss may search: ranges
      # from ../shared/spec/loss-family.md around each loss's published values
      'space': ml_collections.ConfigDict({
          'learning_rate': (1e-4, 1e-2, 'log'),
          'lam': (1e-3, 1.0, 'log'), 'alpha': (0.1, 1.0, 'linear'),
          'scale': (4.0, 64.0, 'log'),
          'cosface_margin': (0.05, 0.5, 'linear'), 'arcface_margin': (0.1, 0.8, 'linear'),
          'sphereface_m': (1, 4, 'int'), 'm2': (0.1, 0.5, 'linear'),
          'm3': (0.05, 0.35, 'linear'), 'contrastive_delta': (0.1, 10.0, 'log'),
          'git_weight': (0.1, 100.0, 'log'), 'island_weight': (0.1, 100.0, 'log')}),
  })
  if 'cpu' in tokens or 'smoke' in tokens:
    configs.apply_cpu(c)
    c.optimizer.learning_rate = 1e-3  # searched; the value only seeds the config
    c.data.num_digits = 2
    c.data.ndigit_train_images = 14_000  # 200 of each training number
    c.data.ndigit_test_images = 10_000  # of the 30 unseen numbers: 333 each
    c.data.ndigit_validation_images = 7_000  # 100 of each training number
    c.evals.openset.unknown_classes = 4  # 4 x 333 >= 1,000 non-mated probes
    c.sweep.feature_size = (64,)
    c.benchmark.losses = CPU_LOSSES
    c.benchmark.folds, c.benchmark.trials, c.benchmark.startup_trials = 2, 16, 6
    c.benchmark.search_seeds = (0,)
    c.num_steps = 300  # 1.4 epochs of 14,000 images at batch 64: what 90 minutes of 2
    #                    cores buy for 252 runs (docs/benchmark.md)
  if 'smoke' in tokens:
    configs.apply_smoke(c)
    c.data.source = 'bundled'  # 400 training and 100 test images of each digit
    c.data.ndigit_train_images, c.data.ndigit_test_images = 7_000, 3_000
    c.data.ndigit_validation_images, c.data.ndigit_validation_digits = 7_000, 1_000
    c.data.num_test = 0
    c.evals.openset.unknown_classes = 2
    c.evals.verification.pairs = 200
    # a margin head with center loss and a regularizer other than center
    c.benchmark.losses = ('softmax/none', 'softmax/center', 'cosface/center', 'softmax/ring')
    c.benchmark.trials, c.benchmark.startup_trials, c.benchmark.seeds = 3, 2, (0, 1)
  return c
