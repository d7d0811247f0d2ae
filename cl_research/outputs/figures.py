"""ECCV16 Figures 2, 3 and 5, drawn from a finished sweep's results and features.

Each `figN(workdir, results, features_by_name, dataset)` writes `<workdir>/figN.png`.
"""

import math

import matplotlib.pyplot as plt
import numpy as np

from cl_research import outputs
from cl_research.configs import sweeps
from cl_research.evaluation import statistics as analysis
from cl_research.outputs import plots

FIG5_LAMBDAS = (0.0, 1e-4, 2e-4, 5e-4, 1e-3, 3e-3, 5e-3, 1e-2, 2e-2, 5e-2, 7e-2, 1e-1)
FIG5_ALPHAS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
FIG5_FIXED_ALPHA = 0.5
FIG5_FIXED_LAMBDA = 0.003


def _first_seed(results):
  """The runs of the smallest seed: the one the scatter figures show."""
  seed = min(r['seed'] for r in results)
  return [r for r in results if r['seed'] == seed], seed


def fig2(workdir, results, features_by_name, dataset):
  """Softmax-only 2-D features, (a) train and (b) test, like ECCV16 Fig. 2 (one seed)."""
  runs, seed = _first_seed(results)
  run = next(r for r in runs if r['lam'] == 0.0)
  feats = features_by_name[run['name']] if run['status'] == 'complete' else None
  title = (f'Fig. 2 reproduction: softmax loss only, seed {seed}, {dataset.title}\n'
           f'(a) train, (b) test; {outputs.cell_label(run)}')
  path = outputs.workdir_file(workdir, 'fig2.png')
  plots.plot_run(feats, title, dataset.class_names, path)
  return path


def fig3(workdir, results, features_by_name, dataset, max_points=10_000):
  """2x2 panels of train features for the four lambdas (one seed), as the paper draws
  them, centers as white dots; each panel names the test split's intra/inter beside."""
  runs, seed = _first_seed(results)
  runs = sorted((r for r in runs if r['lam'] > 0), key=lambda r: r['lam'])[:4]
  fig, axes = plt.subplots(2, 2, figsize=(10, 9))
  names = dataset.class_names
  for k, (ax, run) in enumerate(zip(axes.ravel(), runs)):
    head = f'({"abcd"[k]}) lambda = {run["lam"]:g}'
    if run['status'] != 'complete':
      plots.empty_panel(ax, head, 'diverged')
      continue
    feats = features_by_name[run['name']]
    keep = plots.subsample(len(feats['train_labels']), max_points)
    plots.scatter_panel(ax, feats['train_features'][keep], feats['train_labels'][keep],
                        feats['centers'], f'{head}: train features\n(test split: '
                        f'intra/inter {run["test_intra_inter"]:.3g})', names)
  for ax in axes.ravel()[len(runs):]:
    ax.axis('off')
  plots.legend_outside(fig, axes)
  return plots.save(fig, outputs.workdir_file(workdir, 'fig3.png'),
                    f'Fig. 3 reproduction: softmax + center loss, alpha = '
                    f'{runs[0]["alpha"]:g}, seed {seed}: train features, with the test split\'s '
                    f'intra/inter\n{dataset.title}',
                    bbox_inches='tight')


def _percent_interval(runs, key):
  """Mean, low and high (percent) over the runs' seeds: the 95% Student-t interval of
  the mean (the mean itself for one seed)."""
  mean, _, low, high = analysis.mean_interval(
      [math.nan if r.get(key) is None else 100 * r[key] for r in runs])
  return mean, low, high


def _curve(ax, xs, points, xlabel):
  """Verification accuracy by cosine (the protocol) and by Euclidean distance at each
  point (a list of runs over seeds): the mean over seeds with its 95% interval, or for
  one seed the std over the 10 folds of its one pair set."""
  seeds = max(len(runs) for runs in points)
  for key, style, color, name in (('verification_accuracy', 'o-', '0.2', 'cosine (the protocol)'),
                                  ('verification_accuracy_l2', 's--', 'tab:blue',
                                   'Euclidean distance')):
    mean, low, high = np.array([_percent_interval(runs, key) for runs in points]).T
    if seeds == 1 and key == 'verification_accuracy':
      std = np.array([_percent_interval(runs, 'verification_accuracy_std')[0]
                      for runs in points])
      low, high = mean - std, mean + std
    band = (f'95% interval over {seeds} seeds' if seeds > 1 else
            '+- std over the 10 folds of one pair set')
    if seeds > 1:
      ax.fill_between(xs, low, high, color=color, alpha=0.15, label=f'{name}: {band}')
    elif key == 'verification_accuracy':  # another quantity: drawn as error bars
      ax.errorbar(xs, mean, yerr=[mean - low, high - mean], fmt='none', ecolor=color,
                  capsize=3, lw=0.8, label=f'{name}: {band}')
    ax.plot(xs, mean, style, color=color, mfc='white', ms=4, lw=1,
            label=name + (f', mean of {seeds} seeds' if seeds > 1 else ''))
  ax.set_xlabel(xlabel)
  ax.set_ylabel('Verification Accuracy (%)')
  ax.grid(axis='y', linestyle='--', color='0.7')


def _same_seeds(points):
  """Each point's runs of the seeds every point has, so each point averages the same
  seeds (a point shared with another curve may have more)."""
  common = set.intersection(*({r['seed'] for r in runs} for runs in points))
  return [[r for r in runs if r['seed'] in common] for runs in points]


def fig5(workdir, results, features_by_name, dataset):
  """Verification accuracy (a) vs lambda at alpha 0.5, (b) vs alpha at lambda 0.003;
  each point the mean over the seeds of its curve, with a band."""
  del features_by_name
  by_point = {}
  for r in results:
    by_point.setdefault((r['lam'], r['alpha']), []).append(r)
  lam_points = _same_seeds([by_point[(lam, FIG5_FIXED_ALPHA)] for lam in FIG5_LAMBDAS
                            if (lam, FIG5_FIXED_ALPHA) in by_point])
  alpha_points = _same_seeds([by_point[(FIG5_FIXED_LAMBDA, a)] for a in FIG5_ALPHAS
                              if (FIG5_FIXED_LAMBDA, a) in by_point])
  fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(12, 4.2))
  # The paper spaces its lambdas evenly on a log-like axis that also shows 0.
  positions = np.arange(len(lam_points))
  _curve(ax_a, positions, lam_points, 'lambda (evenly spaced, log-like; 0 shown)')
  ax_a.set_xticks(positions, [f'{runs[0]["lam"]:g}' for runs in lam_points], rotation=45,
                  fontsize=7)
  seeds = lambda points: ('seeds ' if len(points[0]) > 1 else 'seed ') + ', '.join(
      str(r['seed']) for r in points[0])
  ax_a.set_title(f'(a) alpha = {FIG5_FIXED_ALPHA:g}, {seeds(lam_points)}', fontsize=9)
  _curve(ax_b, [runs[0]['alpha'] for runs in alpha_points], alpha_points, 'alpha')
  ax_b.set_title(f'(b) lambda = {FIG5_FIXED_LAMBDA:g}, {seeds(alpha_points)}',
                 fontsize=9)
  for ax, below in ((ax_a, -0.34), (ax_b, -0.26)):  # under each panel: inside, it hid points
    ax.legend(loc='upper center', bbox_to_anchor=(0.5, below), fontsize=7, ncol=2)
  return plots.save(fig, outputs.workdir_file(workdir, 'fig5.png'),
                    f'Fig. 5 reproduction: pair verification (10-fold threshold) '
                    f'on the test split\n{dataset.title}', bbox_inches='tight')


FIGURES = {'fig2': fig2, 'fig3': fig3, 'fig5': fig5}


def openset(workdir, results, features_by_name, dataset):
  """ROC curves of verification on the held-out classes: a row per score (cosine, and
  Euclidean, the distance center loss pulls in), a column per split and feature size,
  one curve per setting (colour and line style), the mean over seeds. No bands: with
  five settings they hide the curves; the intervals of the rates are in
  comparisons.csv."""
  del features_by_name
  panels, done = {}, [r for r in results if r['status'] == 'complete' and r.get(
      'verification_roc')]
  for r in done:
    setting = sweeps.describe_point(r, ('head', 'regularizer', 'lam', 'scale', 'margin'))
    panels.setdefault((tuple(r['holdout']), r['feature_size']), {}).setdefault(
        setting, []).append(r['verification_roc'])
  keys = sorted(panels)
  settings = list(dict.fromkeys(s for panel in panels.values() for s in panel))  # colours
  styles = ('-', '--', '-.', ':')
  scores = (('tar_cosine', 'cosine'), ('tar_l2', 'Euclidean'))
  columns = max(len(keys), 1)
  fig, axes = plt.subplots(2, columns, figsize=(4.8 * columns, 8.4), squeeze=False)
  for row, (score, score_name) in enumerate(scores):
    for ax, key in zip(axes[row], keys):
      for setting, rocs in panels[key].items():
        far = np.array(rocs[0]['far'])
        tar = np.array([roc[score] for roc in rocs])
        k = settings.index(setting)
        ax.plot(far, tar.mean(axis=0), color=plots.CLASS_COLORS[k % 10],
                ls=styles[k % len(styles)], lw=1.8,
                label=f'{setting} ({len(rocs)} seed{"s" * (len(rocs) > 1)})')
      ax.set_xscale('log')
      ax.set_ylim(0, 1.02)
      ax.set_xlabel('false accept rate', fontsize=9)
      ax.set_ylabel(f'true accept rate ({score_name})', fontsize=9)
      ax.set_title(f'{score_name} scores: unseen classes {", ".join(map(str, key[0]))}, '
                   f'd={key[1]}', fontsize=9)
      ax.grid(linestyle='--', color='0.8')
  handles, labels = plots.legend_entries(axes)
  fig.legend(handles, labels, loc='upper center', bbox_to_anchor=(0.5, 0.0),
             ncol=min(len(labels), 3) or 1, fontsize=10, handlelength=3)
  return plots.save(fig, outputs.workdir_file(workdir, 'roc.png'),
                    f'Open-set verification on classes never trained on (mean over seeds; '
                    f'intervals: comparisons.csv)\n{dataset.title}', bbox_inches='tight')


FIGURES['openset'] = openset
