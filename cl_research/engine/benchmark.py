"""The fair-comparison protocol (the metric-learning reality check, Musgrave et al. 2020;
../shared/spec/benchmark.md): every loss gets the same tuning budget on validation
classes, then its best setting is retrained with several seeds and tested once on
classes no run was trained or tuned on.

1. Classes: the dataset's held-out classes are the test classes (n-digit MNIST's unseen
   numbers), the rest train; `benchmark.folds` seeded class-disjoint folds of them
   (`data.splits`).
2. Search, per loss (`benchmark.losses`, each `head/regularizer`): an Optuna study with a
   seeded TPE sampler over the loss's own hyperparameters (`benchmark.space`:
   learning rate always, lambda and alpha with center loss, the scale of the normalised
   heads, the margin of CosFace / ArcFace), `benchmark.trials` trials. A trial trains
   once per fold on the other folds' classes and is scored by MAP@R of the held-out
   fold's classes (their test-split images, against each other), averaged over folds.
3. Finals: each loss's best setting with `benchmark.seeds` on all training classes,
   evaluated by `config.evals` on the test classes (retrieval, verification pairs,
   open-set identification); `comparisons.csv` pairs each loss with softmax by seed
   (the verdicts of `evaluation.statistics`, Holm over `analysis.family`).

Everything is a file under the workdir: `study.db` (Optuna's SQLite storage: the same
command after a kill resumes; a trial that was running is asked again with the same
setting, and every fold run that finished is kept, as a sweep keeps finished runs),
`trials/<loss>/<trial>/` (a sweep workdir, one run per fold), `trials.csv`, `best_settings.json`,
`finals/<loss>/` (sweep workdirs), `summary.csv`, `summary_by_setting.csv`,
`comparisons.csv`, `optimization.png`, `benchmark.png`.
"""

import dataclasses
import logging
import os

import ml_collections
import numpy as np
import optuna

from cl_research import data as data_lib
from cl_research import errors
from cl_research import files
from cl_research import outputs
from cl_research.core import heads
from cl_research.data import splits
from cl_research.engine import experiment
from cl_research.evaluation import evaluators
from cl_research.evaluation import retrieval
from cl_research.evaluation import statistics
from cl_research.outputs import plots

log = logging.getLogger(__name__)

MARGIN_HEADS = ('cosface', 'arcface')
SEARCHED_HEADS = ('softmax', 'normface') + MARGIN_HEADS  # heads whose space is declared
SPACE_KEYS = ('learning_rate', 'lam', 'alpha', 'scale', 'cosface_margin', 'arcface_margin')


def loss_name(loss):
  return loss.replace('/', '+')


def searched(loss):
  """The hyperparameters of `benchmark.space` that loss `head/regularizer` has."""
  head, regularizer = loss.split('/')
  keys = ['learning_rate']
  if regularizer != 'none':
    keys += ['lam', 'alpha']
  if heads.is_normalized(head):
    keys.append('scale')
  if head in MARGIN_HEADS:
    keys.append(f'{head}_margin')
  return keys


def validate(config):
  """Raises ConfigError where `config.benchmark` cannot work (before any compute)."""
  b = config.benchmark
  errors.check(b.losses and ('softmax/none' in b.losses), f'benchmark.losses={b.losses!r} '
               "must include the baseline 'softmax/none'")
  for loss in b.losses:
    head, _, regularizer = loss.partition('/')
    errors.check(head in SEARCHED_HEADS and regularizer in ('none', 'center'),
                 f'benchmark.losses has {loss!r}: HEAD/REGULARIZER with HEAD one of '
                 f'{", ".join(SEARCHED_HEADS)} and REGULARIZER none or center')
  for key in SPACE_KEYS:
    low, high, scale = b.space[key]
    errors.check(0 < low < high and scale in ('log', 'linear'),
                 f'benchmark.space.{key}={tuple(b.space[key])!r} must be (low, high, '
                 "'log' | 'linear') with 0 < low < high")
  errors.check(b.folds >= 2, f'benchmark.folds={b.folds!r} must be >= 2')
  errors.check(b.trials >= 1, f'benchmark.trials={b.trials!r} must be >= 1')
  errors.check(len(b.seeds) >= 2, f'benchmark.seeds={tuple(b.seeds)!r}: the finals need '
               '>= 2 seeds for intervals')
  errors.check(config.data.name == data_lib.NDIGIT or not config.data.num_test,
               f'data.num_test={config.data.num_test!r} with data.name='
               f'{config.data.name!r}: the benchmark pools both splits and tests on whole '
               'classes, so it must be 0 (every image)')


def suggest(trial, loss, space):
  params = {}
  for key in searched(loss):
    low, high, scale = space[key]
    params[key] = trial.suggest_float(key, low, high, log=scale == 'log')
  return params


def run_config(config, loss, params, seeds, holdouts, evals):
  """A sweep config of one loss at `params` over `seeds` x `holdouts` (tuples of classes
  held out of training; one run per fold in a search, none in the finals)."""
  head, regularizer = loss.split('/')
  c = config.copy_and_resolve_references()
  with c.unlocked():
    del c['benchmark']
    c.optimizer.learning_rate = params['learning_rate']
    c.sweep.head, c.sweep.regularizer = (head,), (regularizer,)
    c.sweep.lam = (params.get('lam', 0.0),)
    c.sweep.alpha = (params.get('alpha', config.sweep.alpha[0]),)
    c.sweep.scale = (params['scale'],) if 'scale' in params else ()
    margin = params.get(f'{head}_margin')
    c.sweep.margin = (margin,) if margin is not None else ()
    c.sweep.seed = tuple(seeds)
    c.sweep.holdout = tuple(tuple(h) for h in holdouts if h)
    c.sweep_extra = ml_collections.ConfigDict({k: () for k in c.sweep_extra})
    c.evals = evals
    c.analysis.baseline = ()
    written = evaluators.metric_keys(evals)
    c.analysis.family = tuple(m for m in config.analysis.family if m in written)
    c.grid = ('feature_size', 'lam')
  return c


def fold_score(result, features, fold_classes):
  """MAP@R of the held-out fold's classes (test-split images against each other); None
  for a run that did not finish."""
  if result is None or result['status'] != 'complete':
    return None
  keep = [int(label) in fold_classes for label in features['test_labels']]
  return retrieval.retrieval_metrics(features['test_features'][keep],
                                     features['test_labels'][keep])['map_at_r']


def requeue_interrupted(study):
  """A trial left running by a kill is failed and asked again with its setting."""
  for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
    study.enqueue_trial(t.params, user_attrs={'requeued_from': t.number})
    storage, trial_id = study._storage, t._trial_id  # pylint: disable=protected-access
    storage.set_trial_user_attr(trial_id, 'interrupted', True)
    storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)


def search(config, workdir, dataset, split, loss, storage):
  """Runs `loss`'s study to `benchmark.trials` finished trials; returns the study."""
  b = config.benchmark
  study = optuna.create_study(
      study_name=loss, storage=storage, direction='maximize', load_if_exists=True,
      sampler=optuna.samplers.TPESampler(seed=b.sampler_seed))
  requeue_interrupted(study)
  done = lambda: len([t for t in study.get_trials(deepcopy=False) if t.state.is_finished()
                      and 'interrupted' not in t.user_attrs])
  evals = ml_collections.ConfigDict({'clustering': config.evals.clustering})
  holdouts = [tuple(split.fold(k)[1]) for k in range(len(split.folds))]
  while done() < b.trials:
    trial = study.ask()
    params = suggest(trial, loss, b.space)
    folder = os.path.join(workdir, 'trials', loss_name(loss), f'{trial.number:03d}')
    # the folds of a trial are one sweep: its runs train side by side (pinned processes)
    results = experiment.train_and_evaluate(
        run_config(config, loss, params, (b.search_seed,), holdouts, evals), folder,
        dataset=dataset)
    scores = []
    for r in results:
      k = holdouts.index(tuple(r['holdout']))
      result, features = outputs.load_run(outputs.run_paths(folder, r['name']))
      scores.append(fold_score(result, features, set(split.fold(k)[1])))
    if any(s is None for s in scores):
      trial.set_user_attr('diverged_folds', sum(s is None for s in scores))
      study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:
      study.tell(trial, sum(scores) / len(scores))
    log.info('%s trial %d: %s -> %s', loss, trial.number, params, scores)
  return study


def trial_rows(studies):
  rows = []
  for loss, study in studies.items():
    for t in study.get_trials(deepcopy=False):
      if 'interrupted' in t.user_attrs:
        continue
      rows.append({'loss': loss, 'trial': t.number, 'state': t.state.name,
                   'validation_map_at_r': t.value, **t.params})
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
  dataset, split = class_split(data_lib.load(config.data), config.benchmark)
  outputs.prepare_workdir(config, workdir)
  storage = f"sqlite:///{os.path.join(os.path.abspath(workdir), 'study.db')}"
  studies = {loss: search(config, workdir, dataset, split, loss, storage)
             for loss in config.benchmark.losses}
  rows = trial_rows(studies)
  outputs.write_csv(outputs.workdir_file(workdir, 'trials.csv'),
                    ['loss', 'trial', 'state', 'validation_map_at_r', *SPACE_KEYS], rows)
  best = {loss: study.best_params for loss, study in studies.items()}
  files.write_json(outputs.workdir_file(workdir, 'best_settings.json'), best)
  results = []
  for loss in config.benchmark.losses:
    finals = experiment.train_and_evaluate(
        run_config(config, loss, best[loss], config.benchmark.seeds, [()],
                   config.evals),
        os.path.join(workdir, 'finals', loss_name(loss)), dataset=dataset)
    results += [{**r, 'loss': loss} for r in finals]
  write_finals(config, workdir, results)
  plots.plot_benchmark(rows, results, config.benchmark.losses,
                       outputs.workdir_file(workdir, 'optimization.png'),
                       outputs.workdir_file(workdir, 'benchmark.png'), dataset.title)
  return results


FINAL_METRICS = ('test_map_at_r', 'test_r_precision', 'test_precision_at_1',
                 'verification_accuracy', 'verification_eer', 'verification_tar_at_far_1e-2',
                 'openset_rank1', 'openset_dir_at_fpir_1e-2')


def write_finals(config, workdir, results):
  """summary.csv (every final run), summary_by_setting.csv (per loss) and
  comparisons.csv (each loss against softmax/none, paired by seed)."""
  metrics = [m for m in FINAL_METRICS if any(m in r for r in results)]
  columns = ['loss', 'name', 'status', 'seed', 'lam', 'alpha', 'scale', 'margin',
             *metrics, 'wall_s']
  outputs.write_csv(outputs.workdir_file(workdir, 'summary.csv'), columns, results)
  by_loss = statistics.by_setting(results, ('loss',), metrics)
  outputs.write_csv(outputs.workdir_file(workdir, 'summary_by_setting.csv'),
                    ['loss', 'n', 'diverged'] + [f'{m}_{s}' for m in metrics for s in (
                        'mean', 'std', 'ci95_low', 'ci95_high')], by_loss)
  rows = statistics.comparisons(results, ('loss',), metrics, 'loss=softmax/none',
                                label=lambda s: s['loss'],
                                margins=dict(config.analysis.margins))
  statistics.adjust(rows, tuple(config.analysis.family))
  outputs.write_csv(outputs.workdir_file(workdir, 'comparisons.csv'),
                    statistics.COMPARISON_COLUMNS, rows)
