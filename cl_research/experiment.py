"""`train_and_evaluate(config, workdir)`: every run of a sweep, its outputs and summary.

The CLI (`cl_research.run`), the tests and the notebooks all call this one function.

Workdir layout:
  config.json            the resolved config
  summary.csv            one row per run
  grid.png               test features, rows = feature size, columns = lambda
  fig2/3/5.png           the paper figure named by `config.figure`, if any
  runs/<name>/           metrics.jsonl, result.json, features.npz, scatter.png,
                         intra_hist.png, evolution.gif (with `snapshot_every`)
"""

import csv
import json
import logging
import os
import time

import jax
import numpy as np
import tqdm

from cl_research import configs
from cl_research import data
from cl_research import figures
from cl_research import metrics
from cl_research import plots
from cl_research import train
from cl_research import verification

RESULT_METRICS = ('train_accuracy', 'train_intra', 'train_inter', 'train_intra_inter',
                  'test_accuracy', 'test_intra', 'test_inter', 'test_intra_inter',
                  'test_knn_accuracy', 'test_silhouette', 'verification_accuracy',
                  'verification_accuracy_std', 'verification_auc',
                  'verification_tar_at_far_1e-3', 'verification_accuracy_l2')
SUMMARY_COLUMNS = (('name', 'status', 'lam', 'alpha', 'feature_size', 'seed', 'data_source',
                    'data_detail', 'num_train', 'num_test', 'num_steps') + RESULT_METRICS +
                   ('final_loss', 'final_softmax_loss', 'final_center_loss', 'wall_s'))


def cell_label(result):
  """Short description of a run's outcome for plot titles."""
  if result['status'] == 'diverged':
    return 'DIVERGED (non-finite features)'
  return f"test acc {result['test_accuracy']:.3f}, intra/inter {result['test_intra_inter']:.3g}"


def json_safe(record):
  """Numpy scalars to Python, non-finite floats to None (JSON has no NaN)."""
  out = {}
  for key, value in record.items():
    value = value.item() if isinstance(value, np.generic) else value
    out[key] = None if isinstance(value, float) and not np.isfinite(value) else value
  return out


def write_json(path, record):
  with open(path, 'w') as f:
    json.dump(json_safe(record), f, indent=2)
    f.write('\n')


def evaluate(trainer, state, dataset, eval_config):
  """Final features of both splits and every metric computed from them.

  With held-out classes, accuracy, k-NN and clustering use the classes seen in training
  and verification pairs come only from the held-out ones (open-set).
  """
  features, logits = {'centers': np.asarray(state.centers)}, {}
  for split in ('train', 'test'):
    images = getattr(dataset, f'{split}_images')
    features[f'{split}_features'], logits[split] = trainer.features_and_logits(state.params,
                                                                              images)
    features[f'{split}_labels'] = getattr(dataset, f'{split}_labels')
  finite = all(np.isfinite(features[k]).all()
               for k in ('train_features', 'test_features', 'centers'))
  if not finite:
    return None, features
  result = {}
  known = ~np.isin(features['test_labels'], dataset.holdout_classes)
  for split, mask in (('train', slice(None)), ('test', known)):
    feats, labels = features[f'{split}_features'][mask], features[f'{split}_labels'][mask]
    result[f'{split}_accuracy'] = metrics.accuracy(logits[split][mask], labels)
    for key, value in metrics.clustering(feats, labels, dataset.num_classes).items():
      result[f'{split}_{key}'] = value
  result['test_knn_accuracy'] = metrics.knn_accuracy(
      features['train_features'], features['train_labels'], features['test_features'][known],
      features['test_labels'][known], k=eval_config.knn_k)
  result['test_silhouette'] = metrics.silhouette(
      features['test_features'][known], features['test_labels'][known],
      eval_config.silhouette_samples)
  if eval_config.verification_pairs:
    result.update(verification.evaluate(
        features['test_features'], features['test_labels'], eval_config.verification_pairs,
        seed=eval_config.pairs_seed, classes=dataset.holdout_classes or None))
  return result, features


def _snapshot(trainer, state, step, images):
  features, _ = trainer.features_and_logits(state.params, images)
  return step, features, np.asarray(state.centers)


def train_run(trainer, dataset, config, point, run_dir, progress):
  """Trains one point of the sweep and writes its outputs; returns its result dict."""
  start = time.perf_counter()
  os.makedirs(run_dir, exist_ok=True)
  state = trainer.init(point['seed'])
  hparams = train.hparams_of(point['lam'], point['alpha'])
  last = {}
  snap_idx = plots.subsample(len(dataset.test_labels), 2000)
  snapshots = ([_snapshot(trainer, state, 0, dataset.test_images[snap_idx])]
               if config.snapshot_every else [])
  with open(os.path.join(run_dir, 'metrics.jsonl'), 'w') as log:
    order = train.batch_indices(point['seed'], len(dataset.train_labels), config.batch_size,
                                config.num_steps)
    for step, idx in enumerate(order, start=1):
      batch = {'image': dataset.train_images[idx], 'label': dataset.train_labels[idx]}
      state, step_metrics = trainer.train_step(state, batch, hparams)
      if config.snapshot_every and (step % config.snapshot_every == 0 or
                                    step == config.num_steps):
        snapshots.append(_snapshot(trainer, state, step, dataset.test_images[snap_idx]))
      if step % config.log_every == 0 or step == config.num_steps:
        last = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
        log.write(json.dumps(json_safe({'step': step, **last})) + '\n')
        log.flush()
        progress.set_postfix(loss=f"{last['loss']:.3f}", acc=f"{last['accuracy']:.2f}")
      progress.update(1)
  result, features = evaluate(trainer, state, dataset, config.eval)
  np.savez_compressed(os.path.join(run_dir, 'features.npz'), **features)
  diverged = result is None
  if diverged:  # the numbers of a NaN run mean nothing: record none of them
    logging.warning('run %s diverged: non-finite features or centers', configs.run_name(point))
    result = dict.fromkeys(RESULT_METRICS)
  result = {
      'name': configs.run_name(point), **point,
      'status': 'diverged' if diverged else 'complete',
      'center_mode': config.centers.mode, 'data_source': dataset.source,
      'data_detail': dataset.detail, 'num_train': len(dataset.train_labels),
      'num_test': len(dataset.test_labels), 'num_steps': config.num_steps,
      **result, 'final_loss': last.get('loss'),
      'final_softmax_loss': last.get('softmax_loss'),
      'final_center_loss': last.get('center_loss'),
  }
  title = (f"{dataset.title}  lambda={point['lam']:g} alpha={point['alpha']:g} "
           f"d={point['feature_size']}  " + cell_label(result))
  names = data.class_names(dataset.name)
  plots.plot_run(None if diverged else features, title, names,
                 os.path.join(run_dir, 'scatter.png'), config.plot_max_points)
  if not diverged:
    distances = metrics.intra_class_distances(features['test_features'],
                                              features['test_labels'], dataset.num_classes)
    plots.plot_intra_histogram(distances, features['test_labels'], names,
                               f'test intra-class distances, {title}',
                               os.path.join(run_dir, 'intra_hist.png'))
  if snapshots:
    plots.write_evolution_gif(snapshots, dataset.test_labels[snap_idx], names,
                              f"lambda={point['lam']:g}", os.path.join(run_dir, 'evolution.gif'))
  result['wall_s'] = round(time.perf_counter() - start, 2)
  write_json(os.path.join(run_dir, 'result.json'), result)
  return result, features


def write_summary(path, results):
  with open(path, 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS, extrasaction='ignore',
                            restval='')
    writer.writeheader()
    for r in results:
      writer.writerow(r)


def write_grids(workdir, config, dataset, results, features_by_name):
  """One grid per (alpha, seed): `grid.png` for the first, suffixed names for others."""
  lams, dims = tuple(config.sweep.lam), tuple(config.sweep.feature_size)
  paths = []
  for k, (alpha, seed) in enumerate((a, s) for a in config.sweep.alpha
                                    for s in config.sweep.seed):
    cells = {(r['feature_size'], r['lam']): {
        'features': features_by_name[r['name']] if r['status'] == 'complete' else None,
        'label': cell_label(r)} for r in results if r['alpha'] == alpha and r['seed'] == seed}
    name = 'grid.png' if k == 0 else f'grid_alpha={alpha:g}_seed={seed}.png'
    title = (f'{dataset.title}: test features, alpha={alpha:g}, seed={seed}, '
             f'{config.num_steps} steps')
    plots.plot_grid(cells, dims, lams, title, data.class_names(dataset.name),
                    os.path.join(workdir, name))
    paths.append(name)
  return paths


def format_table(results):
  cols = ('lam', 'alpha', 'feature_size', 'seed', 'status', 'test_accuracy',
          'test_intra_inter', 'wall_s')
  head = ' '.join(f'{c:>16}' for c in cols)
  rows = [' '.join(f'{r[c]:>16.4g}' if isinstance(r[c], float) else f'{r[c]:>16}'
                   for c in cols) for r in results]
  return '\n'.join([head] + rows)


def train_and_evaluate(config, workdir, dataset=None):
  """Runs every point of `config.sweep` and writes all outputs under `workdir`."""
  configs.validate(config)
  if dataset is None:
    dataset = data.load(config.data)
  points = configs.expand_runs(config)
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    f.write(config.to_json_best_effort(indent=2) + '\n')
  trainers = {}
  results, features_by_name = [], {}
  progress = tqdm.tqdm(total=len(points) * config.num_steps, unit='step', mininterval=1.0,
                       dynamic_ncols=True)
  with progress:
    for point in points:
      name = configs.run_name(point)
      progress.set_description(name)
      d = point['feature_size']
      if d not in trainers:
        trainers[d] = train.Trainer(config, d, dataset.num_classes, dataset.image_shape)
      result, features = train_run(trainers[d], dataset, config, point,
                                   os.path.join(workdir, 'runs', name), progress)
      results.append(result)
      features_by_name[name] = features
  write_summary(os.path.join(workdir, 'summary.csv'), results)
  write_grids(workdir, config, dataset, results, features_by_name)
  if config.figure:
    figures.FIGURES[config.figure](workdir, results, features_by_name, dataset)
  logging.info('data source: %s', dataset.title)
  return results
