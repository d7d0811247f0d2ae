"""The fair-comparison protocol (the metric-learning reality check, Musgrave et al. 2020;
../shared/spec/benchmark.md): every loss gets the same tuning budget on validation
classes, then its best setting is retrained with several seeds and tested once on
classes no run was trained or tuned on.

1. Classes: the dataset's held-out classes are the test classes (n-digit MNIST's unseen
   numbers), the rest train; `benchmark.folds` seeded class-disjoint folds of them
   (`data.splits`). Trials are scored on validation images that share no image with the
   test split: n-digit MNIST's validation split (composed from MNIST training digits
   that no training or test image uses), else the training images of the fold's
   classes, which that fold's runs never train on.
2. Search, per loss (`benchmark.losses`, each `head/regularizer`) and per search seed
   (`benchmark.search_seeds`): an Optuna study over the loss's own hyperparameters (the
   learning rate, `lam` and `alpha` of a regularizer, and the numbers its head and
   regularizer declare, `heads.Head.hyperparameters`), each in its range of
   `benchmark.space`, for `benchmark.trials` trials. The sampler is multivariate TPE
   after `benchmark.startup_trials` random ones; it is made anew for each trial with a
   seed derived from (`sampler_seed`, search seed, loss, trial number), so every loss
   draws its own points and a killed study, resumed, asks exactly the trials an
   uninterrupted one asks. A trial trains once per fold and training seed
   (`benchmark.trial_seeds`) on the other folds' classes and is scored by MAP@R of the
   held-out fold's classes, averaged.
3. Finals: each search's best setting with `benchmark.seeds` on all training classes,
   evaluated by `config.evals` on the test classes (retrieval, verification pairs,
   open-set identification). `comparisons.csv`: each loss against the baseline
   (`benchmark.baseline`), the focus loss (`benchmark.focus`, softmax + center) against
   every other loss, and each head with a regularizer against the same head without
   one; paired by (search, seed); one Holm family per metric; equivalence margins a
   declared fraction of the compared-against loss's error (`benchmark.equivalence`).

Everything is a file under the workdir: `study.db` (Optuna's SQLite storage: the same
command after a kill resumes; a trial that was running is run again with its setting in
its own folder, keeping every fold run that finished),
`trials/<loss>/search<s>/<trial>/` (a sweep workdir, one run per fold and trial seed),
`trials.csv`, `best_settings.json`, `finals/<loss>/search<s>/` (sweep workdirs),
`summary.csv`, `summary_by_setting.csv`, `summary_by_search.csv`, `comparisons.csv`,
`optimization.png`, `benchmark.png`.
"""

import dataclasses
import logging
import math
import os
import warnings
import zlib

import ml_collections
import numpy as np
import optuna

from cl_research import data as data_lib
from cl_research import errors
from cl_research import files
from cl_research import outputs
from cl_research.core import heads
from cl_research.core import losses
from cl_research.core import regularizers
from cl_research.data import splits
from cl_research.engine import experiment
from cl_research.evaluation import retrieval
from cl_research.evaluation import statistics
from cl_research.outputs import plots

log = logging.getLogger(__name__)

SCALES = ('log', 'linear', 'int')  # how a range of `benchmark.space` is searched
FINAL_METRICS = ('test_map_at_r', 'test_r_precision', 'test_precision_at_1',
                 'verification_accuracy', 'verification_eer', 'verification_tar_at_far_1e-2',
                 'openset_rank1', 'openset_dir_at_fpir_1e-2')
LOWER_IS_BETTER = ('verification_eer',)  # its value is its error
TRIAL_COLUMNS = ('loss', 'search', 'trial', 'state', 'proposed_by', 'validation_map_at_r',
                 'clip_fraction')


def loss_name(loss):
  return loss.replace('/', '+')


def split_loss(loss):
  head, _, regularizer = loss.partition('/')
  return head, regularizer


def searched(loss, config):
  """The hyperparameters a search of `head/regularizer` tunes: the learning rate; `lam`
  with a regularizer, `alpha` when its centers follow ECCV16's update; and the numbers
  the head and the regularizer declare."""
  head, regularizer = split_loss(loss)
  keys = ['learning_rate']
  if regularizer != 'none':
    keys.append('lam')
    if regularizers.uses_centers(regularizer) and config.centers.mode == 'paper':
      keys.append('alpha')
  return keys + list(heads.HEADS[head].hyperparameters) + list(
      regularizers.REGULARIZERS[regularizer].hyperparameters)


def validate(config):
  """Raises ConfigError where `config.benchmark` cannot work (before any compute)."""
  b = config.benchmark
  for role in ('baseline', 'focus'):
    errors.check(b[role] in b.losses, f'benchmark.{role}={b[role]!r} must be one of '
                 f'benchmark.losses={tuple(b.losses)!r}')
  domains = losses.number_domains()
  for loss in b.losses:
    head, regularizer = split_loss(loss)
    errors.check(head in heads.HEADS and regularizer in regularizers.REGULARIZERS,
                 f'benchmark.losses has {loss!r}: HEAD/REGULARIZER with HEAD one of '
                 f'{", ".join(heads.HEADS)} and REGULARIZER one of '
                 f'{", ".join(regularizers.REGULARIZERS)}')
    regularizers.validate(regularizer, head)
    for key in searched(loss, config):
      errors.check(key in b.space, f'benchmark.space has no range for {key!r}, which '
                   f'{loss} searches; add --config.benchmark.space.{key}=(LOW, HIGH, SCALE)')
  for key, bounds in b.space.items():
    errors.check(len(bounds) == 3 and bounds[2] in SCALES and errors.is_number(bounds[0])
                 and errors.is_number(bounds[1]) and bounds[0] < bounds[1]
                 and (bounds[0] > 0 or bounds[2] != 'log'),
                 f'benchmark.space.{key}={tuple(bounds)!r} must be (low, high, '
                 f"{' | '.join(repr(s) for s in SCALES)}) with low < high (0 < low for 'log')")
    if key in domains:
      holds, words = domains[key]
      for end in bounds[:2]:
        errors.check(holds(end), f'benchmark.space.{key}={tuple(bounds)!r}: {end!r} is '
                     f'outside its domain ({words})')
  errors.check(b.folds >= 2, f'benchmark.folds={b.folds!r} must be >= 2')
  errors.check(b.trials >= 1, f'benchmark.trials={b.trials!r} must be >= 1')
  errors.check(0 <= b.startup_trials <= b.trials, f'benchmark.startup_trials='
               f'{b.startup_trials!r} must be in [0, benchmark.trials={b.trials}]')
  errors.check(len(b.seeds) >= 2, f'benchmark.seeds={tuple(b.seeds)!r}: the finals need '
               '>= 2 seeds for intervals')
  for name in ('search_seeds', 'trial_seeds'):
    values = tuple(b[name])
    errors.check(values and len(set(values)) == len(values) and all(
        isinstance(v, int) and v >= 0 for v in values),
                 f'benchmark.{name}={values!r} must be distinct integers >= 0, at least one')
  errors.check(0 < b.equivalence < 1, f'benchmark.equivalence={b.equivalence!r} must be in '
               "(0, 1): the share of the compared-against loss's error")
  errors.check(config.data.name == data_lib.NDIGIT or not config.data.num_test,
               f'data.num_test={config.data.num_test!r} with data.name='
               f'{config.data.name!r}: the benchmark pools both splits and tests on whole '
               'classes, so it must be 0 (every image)')


def derived_seed(*parts):
  """A 32-bit seed from integers and strings (strings by CRC-32: the same everywhere)."""
  words = [zlib.crc32(p.encode()) if isinstance(p, str) else int(p) for p in parts]
  return int(np.random.SeedSequence(words).generate_state(1)[0])


def sampler_for(b, loss, search, number):
  """The sampler that proposes trial `number` of `loss`'s search `search`: multivariate
  TPE after `b.startup_trials` complete trials, seeded for this trial alone."""
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
    return optuna.samplers.TPESampler(
        n_startup_trials=b.startup_trials, multivariate=True, constant_liar=False,
        seed=derived_seed(b.sampler_seed, search, loss, number))


def suggest(trial, keys, space):
  params = {}
  for key in keys:
    low, high, scale = space[key]
    params[key] = (trial.suggest_int(key, int(low), int(high)) if scale == 'int' else
                   trial.suggest_float(key, low, high, log=scale == 'log'))
  return params


def proposer(study, b):
  """Who proposes the next trial: 'startup' (random) until `b.startup_trials` trials
  are complete, then 'tpe' (TPE's own rule: failed trials do not count)."""
  complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                      optuna.trial.TrialState.PRUNED))
  return 'startup' if len(complete) < b.startup_trials else 'tpe'


def run_study(study, b, loss, search, keys, objective):
  """Runs `study` to `b.trials` finished trials. A trial left running by a kill is run
  again first, under its own number with its stored setting; each new trial is asked
  of `sampler_for(...)` its number. `objective(number, params)` -> (score or None for
  a failed trial, user attributes). Returns the study."""
  while True:
    trials = study.get_trials(deepcopy=False)
    running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    if running:
      frozen = running[0]
      number, params = frozen.number, dict(frozen.params)
      if set(params) != set(keys) or 'proposed_by' not in frozen.user_attrs:
        # killed while it was being asked: finish it as the uninterrupted ask would
        study.sampler = sampler_for(b, loss, search, number)
        trial = optuna.trial.Trial(study, frozen._trial_id)  # pylint: disable=protected-access
        trial.set_user_attr('proposed_by', proposer(study, b))
        params = suggest(trial, keys, b.space)
    elif sum(t.state.is_finished() for t in trials) >= b.trials:
      return study
    else:
      by = proposer(study, b)
      study.sampler = sampler_for(b, loss, search, len(trials))
      trial = study.ask()
      trial.set_user_attr('proposed_by', by)
      number, params = trial.number, suggest(trial, keys, b.space)
    score, attrs = objective(number, params)
    storage = study._storage  # pylint: disable=protected-access
    trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)  # pylint: disable=protected-access
    for key, value in attrs.items():
      storage.set_trial_user_attr(trial_id, key, value)
    if score is None:
      study.tell(number, state=optuna.trial.TrialState.FAIL)
    else:
      study.tell(number, score)
    log.info('%s search %d trial %d: %s -> %s', loss, search, number, params, score)


def study_name(loss, search):
  return f'{loss}#search{search}'


def run_config(config, loss, params, seeds, holdouts, evals, plots=True):
  """A sweep config of one loss at `params` over `seeds` x `holdouts` (tuples of classes
  held out of training; one run per fold in a search, none in the finals). The learning
  rate, lam, alpha, scale and the head's margin are the sweep's; every other searched
  number is set in `config.loss`. `plots`: its runs' figures (trials draw none)."""
  head, regularizer = split_loss(loss)
  margin_field = heads.HEADS[head].margin_field
  c = config.copy_and_resolve_references()
  with c.unlocked():
    del c['benchmark']
    c.optimizer.learning_rate = params['learning_rate']
    c.sweep.head, c.sweep.regularizer = (head,), (regularizer,)
    c.sweep.lam = (params.get('lam', 0.0),)
    c.sweep.alpha = (params.get('alpha', config.sweep.alpha[0]),)
    c.sweep.scale = (params['scale'],) if 'scale' in params else ()
    c.sweep.margin = (params[margin_field],) if margin_field in params else ()
    for key, value in params.items():
      if key not in ('learning_rate', 'lam', 'alpha', 'scale', margin_field):
        c.loss[key] = value
    c.sweep.seed = tuple(seeds)
    c.sweep.holdout = tuple(tuple(h) for h in holdouts if h)
    c.sweep_extra = ml_collections.ConfigDict({k: () for k in c.sweep_extra})
    c.evals = evals
    c.analysis.baseline = ()
    c.analysis.family = ()
    c.grid = ('feature_size', 'lam')
    c.plots = config.plots and plots
  return c


def fold_score(result, features, fold_classes):
  """MAP@R of the held-out fold's classes (their validation images against each
  other); None for a run that did not finish."""
  if result is None or result['status'] != 'complete':
    return None
  keep = np.isin(features['test_labels'], list(fold_classes))
  return retrieval.retrieval_metrics(features['test_features'][keep],
                                     features['test_labels'][keep])['map_at_r']


def search_dataset(dataset):
  """The dataset trials train and are scored on: its test split replaced by the
  validation images (n-digit MNIST's validation split, else the training split itself:
  each fold's runs hold the scored classes out of training)."""
  if dataset.validation_images is not None:
    images, labels = dataset.validation_images, dataset.validation_labels
  else:
    images, labels = dataset.train_images, dataset.train_labels
  return dataclasses.replace(dataset, test_images=images, test_labels=labels,
                             detail=f'{dataset.detail}; scored on validation images')


def search(config, workdir, dataset, split, loss, search_seed, storage):
  """Runs search `search_seed` of `loss` to `benchmark.trials` finished trials; returns
  the study."""
  b = config.benchmark
  study = optuna.create_study(study_name=study_name(loss, search_seed), storage=storage,
                              direction='maximize', load_if_exists=True)
  holdouts = [tuple(split.fold(k)[1]) for k in range(len(split.folds))]
  def objective(number, params):
    folder = os.path.join(workdir, 'trials', loss_name(loss), f'search{search_seed}',
                          f'{number:03d}')
    # the runs of a trial are one sweep: they train side by side (pinned processes)
    results = experiment.train_and_evaluate(
        run_config(config, loss, params, b.trial_seeds, holdouts,
                   ml_collections.ConfigDict(), plots=False), folder, dataset=dataset)
    scores = []
    for r in results:
      k = holdouts.index(tuple(r['holdout']))
      result, features = outputs.load_run(outputs.run_paths(folder, r['name']))
      scores.append(fold_score(result, features, split.fold(k)[1]))
    clipped = [r.get('clip_fraction') for r in results if r and 'clip_fraction' in r]
    attrs = {'fold_scores': scores,
             'clip_fraction': float(np.mean(clipped)) if clipped else None}
    if any(s is None for s in scores):
      return None, {**attrs, 'diverged_runs': sum(s is None for s in scores)}
    return float(np.mean(scores)), attrs

  return run_study(study, b, loss, search_seed, searched(loss, config), objective)


def trial_rows(studies):
  rows = []
  for (loss, search_seed), study in studies.items():
    for t in study.get_trials(deepcopy=False):
      rows.append({'loss': loss, 'search': search_seed, 'trial': t.number,
                   'state': t.state.name, 'proposed_by': t.user_attrs.get('proposed_by'),
                   'validation_map_at_r': t.value,
                   'clip_fraction': t.user_attrs.get('clip_fraction'), **t.params})
  return rows


def class_split(dataset, settings):
  """(dataset, split): the benchmark's training and unseen classes, and the dataset with
  its splits made class-disjoint. n-digit MNIST brings its own unseen numbers (its
  `holdout_classes`) and is kept as it is. Any other dataset pools both of its splits;
  when they are already class-disjoint (Stanford Online Products), the test split's
  classes are the unseen ones, otherwise the second half of the classes in label order
  (CUB-200-2011, Cars196, MNIST); every image of a training class goes to the train
  split, every image of an unseen class to the test split. Training classes form
  `settings.folds` seeded validation folds."""
  if dataset.holdout_classes:
    test = tuple(dataset.holdout_classes)
  else:
    in_train, in_test = set(dataset.train_labels.tolist()), set(dataset.test_labels.tolist())
    test = (tuple(sorted(in_test)) if not in_train & in_test
            else splits.halves(dataset.num_classes)[1])
    images = np.concatenate([dataset.train_images, dataset.test_images])
    labels = np.concatenate([dataset.train_labels, dataset.test_labels])
    unseen = np.isin(labels, test)
    dataset = dataclasses.replace(
        dataset, train_images=images[~unseen], train_labels=labels[~unseen],
        test_images=images[unseen], test_labels=labels[unseen], holdout_classes=test)
  train = [c for c in range(dataset.num_classes) if c not in test]
  return dataset, splits.make(train, test, settings.folds, settings.split_seed)


def run(config, workdir):
  """The whole protocol under `workdir`; returns the finals' results."""
  validate(config)
  b = config.benchmark
  dataset, split = class_split(data_lib.load(config.data), b)
  outputs.prepare_workdir(config, workdir)
  storage = f"sqlite:///{os.path.join(os.path.abspath(workdir), 'study.db')}"
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  scored = search_dataset(dataset)
  studies = {(loss, s): search(config, workdir, scored, split, loss, s, storage)
             for s in b.search_seeds for loss in b.losses}
  rows = trial_rows(studies)
  space_keys = list(dict.fromkeys(k for loss in b.losses for k in searched(loss, config)))
  outputs.write_csv(outputs.workdir_file(workdir, 'trials.csv'),
                    [*TRIAL_COLUMNS, *space_keys], rows)
  best = {loss: {str(s): studies[loss, s].best_params for s in b.search_seeds}
          for loss in b.losses}
  files.write_json(outputs.workdir_file(workdir, 'best_settings.json'), best)
  results = []
  for s in b.search_seeds:
    for loss in b.losses:
      finals = experiment.train_and_evaluate(
          run_config(config, loss, best[loss][str(s)], b.seeds, [()], config.evals),
          os.path.join(workdir, 'finals', loss_name(loss), f'search{s}'), dataset=dataset)
      results += [{**r, 'loss': loss, 'search': s} for r in finals]
  write_finals(config, workdir, results)
  plots.plot_benchmark(rows, results, b.losses,
                       outputs.workdir_file(workdir, 'optimization.png'),
                       outputs.workdir_file(workdir, 'benchmark.png'), dataset.title)
  return results


def comparison_pairs(b):
  """(loss, compared against) of the page's question: every loss against the baseline,
  the focus loss against every other loss, and each head with a regularizer against
  the same head without one; each pair once."""
  pairs = [(loss, b.baseline) for loss in b.losses if loss != b.baseline]
  pairs += [(b.focus, loss) for loss in b.losses if loss not in (b.focus, b.baseline)]
  for loss in b.losses:
    head, regularizer = split_loss(loss)
    plain = f'{head}/none'
    if regularizer != 'none' and plain in b.losses:
      pairs.append((loss, plain))
  return list(dict.fromkeys(pairs))


def error_of(metric, value):
  """The error a metric's value leaves: 1 - value, or the value of a lower-is-better
  metric (EER)."""
  return value if metric in LOWER_IS_BETTER else 1.0 - value


def compare(results, b, metrics):
  """comparisons.csv's rows (statistics.COMPARISON_COLUMNS and `mde_holm`) of every
  pair of `comparison_pairs`, paired by (search, seed); p-values Holm-adjusted with one
  family per metric; `mde_holm` the minimum detectable effect at the level of the
  family's first Holm step (ALPHA / family size)."""
  by_loss = {}
  for r in results:
    by_loss.setdefault(r['loss'], {})[(r['search'], r['seed'])] = r
  rows = []
  for loss, against in comparison_pairs(b):
    both = sorted(set(by_loss[loss]) & set(by_loss[against]))
    margins = {}
    for m in metrics:
      base = statistics.finite(
          [by_loss[against][k].get(m) for k in both
           if by_loss[against][k]['status'] == 'complete'])
      if len(base):
        margins[m] = b.equivalence * max(error_of(m, float(base.mean())), 1e-6)
    rows += statistics.paired_rows(by_loss[loss], by_loss[against], metrics, loss, against,
                                   margins)
  statistics.adjust(rows, ())
  families = {}
  for r in rows:
    families.setdefault(r['family'], []).append(r)
  for members in families.values():
    size = sum(math.isfinite(r['p_value']) for r in members)
    for r in members:
      r['family_size'] = size
      r['mde_holm'] = statistics.minimum_detectable_effect(
          r['sd'], r['n'], alpha=statistics.ALPHA / max(size, 1))
  return rows


COMPARISON_COLUMNS = statistics.COMPARISON_COLUMNS + ('family_size', 'mde_holm')


def write_finals(config, workdir, results):
  """summary.csv (every final run), summary_by_setting.csv (per loss, every search
  pooled), summary_by_search.csv (per loss and search) and comparisons.csv."""
  b = config.benchmark
  metrics = [m for m in FINAL_METRICS if any(m in r for r in results)]
  columns = ['loss', 'search', 'name', 'status', 'seed', 'lam', 'alpha', 'scale', 'margin',
             *metrics, 'clip_fraction', 'wall_s']
  outputs.write_csv(outputs.workdir_file(workdir, 'summary.csv'), columns, results)
  stats_columns = ['n', 'diverged'] + [f'{m}_{s}' for m in metrics for s in (
      'mean', 'std', 'ci95_low', 'ci95_high')]
  outputs.write_csv(outputs.workdir_file(workdir, 'summary_by_setting.csv'),
                    ['loss'] + stats_columns,
                    statistics.by_setting(results, ('loss',), metrics))
  outputs.write_csv(outputs.workdir_file(workdir, 'summary_by_search.csv'),
                    ['loss', 'search'] + stats_columns,
                    statistics.by_setting(results, ('loss', 'search'), metrics))
  outputs.write_csv(outputs.workdir_file(workdir, 'comparisons.csv'), COMPARISON_COLUMNS,
                    compare(results, b, metrics))
