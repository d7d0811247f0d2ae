"""ECCV16 Figures 2, 3 and 5, drawn from a finished sweep's results and features.

Each `figN(workdir, results, features_by_name, dataset)` writes `<workdir>/figN.png`.
"""

import matplotlib.pyplot as plt
import numpy as np

from cl_research import data
from cl_research import outputs
from cl_research import plots

FIG5_LAMBDAS = (0.0, 1e-4, 2e-4, 5e-4, 1e-3, 3e-3, 5e-3, 1e-2, 2e-2, 5e-2, 7e-2, 1e-1)
FIG5_ALPHAS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
FIG5_FIXED_ALPHA = 0.5
FIG5_FIXED_LAMBDA = 0.003


def fig2(workdir, results, features_by_name, dataset):
  """Softmax-only 2-D features, (a) train and (b) test, like ECCV16 Fig. 2."""
  run = next(r for r in results if r['lam'] == 0.0)
  feats = features_by_name[run['name']] if run['status'] == 'complete' else None
  title = (f'Fig. 2 reproduction: softmax loss only, {dataset.title}\n'
           f'(a) train, (b) test; {outputs.cell_label(run)}')
  path = outputs.workdir_file(workdir, 'fig2.png')
  plots.plot_run(feats, title, data.class_names(dataset.name), path)
  return path


def fig3(workdir, results, features_by_name, dataset, max_points=10_000):
  """2x2 panels of train features for the four lambdas, centers as white dots."""
  runs = sorted((r for r in results if r['lam'] > 0), key=lambda r: r['lam'])[:4]
  fig, axes = plt.subplots(2, 2, figsize=(10, 9))
  names = data.class_names(dataset.name)
  for k, (ax, run) in enumerate(zip(axes.ravel(), runs)):
    head = f'({"abcd"[k]}) lambda = {run["lam"]:g}'
    if run['status'] != 'complete':
      plots.empty_panel(ax, head, 'diverged')
      continue
    feats = features_by_name[run['name']]
    keep = plots.subsample(len(feats['train_labels']), max_points)
    plots.scatter_panel(ax, feats['train_features'][keep], feats['train_labels'][keep],
                        feats['centers'], f'{head}   test intra/inter '
                        f'{run["test_intra_inter"]:.3g}', names)
  for ax in axes.ravel()[len(runs):]:
    ax.axis('off')
  plots.legend_outside(fig, axes)
  return plots.save(fig, outputs.workdir_file(workdir, 'fig3.png'),
                    f'Fig. 3 reproduction: softmax + center loss, alpha = '
                    f'{runs[0]["alpha"]:g}, train features\n{dataset.title}',
                    bbox_inches='tight')


def _percent(runs, key):
  return np.array([np.nan if r.get(key) is None else 100 * r[key] for r in runs])


def _curve(ax, xs, runs, xlabel):
  acc, std = _percent(runs, 'verification_accuracy'), _percent(runs, 'verification_accuracy_std')
  ax.fill_between(xs, acc - std, acc + std, color='0.85', label='+- std over 10 folds')
  ax.plot(xs, acc, 'o-', color='0.2', mfc='white', label='cosine (the protocol)')
  ax.plot(xs, _percent(runs, 'verification_accuracy_l2'), 's--', color='tab:blue', mfc='white',
          ms=4, lw=1, label='Euclidean distance')
  ax.set_xlabel(xlabel)
  ax.set_ylabel('Verification Accuracy (%)')
  ax.grid(axis='y', linestyle='--', color='0.7')


def fig5(workdir, results, features_by_name, dataset):
  """Verification accuracy (a) vs lambda at alpha 0.5, (b) vs alpha at lambda 0.003."""
  del features_by_name
  by_point = {(r['lam'], r['alpha']): r for r in results}
  lam_runs = [by_point[(lam, FIG5_FIXED_ALPHA)] for lam in FIG5_LAMBDAS
              if (lam, FIG5_FIXED_ALPHA) in by_point]
  alpha_runs = [by_point[(FIG5_FIXED_LAMBDA, a)] for a in FIG5_ALPHAS
                if (FIG5_FIXED_LAMBDA, a) in by_point]
  fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(12, 4.2))
  # The paper spaces its lambdas evenly on a log-like axis that also shows 0.
  positions = np.arange(len(lam_runs))
  _curve(ax_a, positions, lam_runs, 'lambda (evenly spaced, log-like; 0 shown)')
  ax_a.set_xticks(positions, [f'{r["lam"]:g}' for r in lam_runs], rotation=45, fontsize=7)
  ax_a.set_title(f'(a) alpha = {FIG5_FIXED_ALPHA:g}', fontsize=9)
  _curve(ax_b, [r['alpha'] for r in alpha_runs], alpha_runs, 'alpha')
  ax_b.set_title(f'(b) lambda = {FIG5_FIXED_LAMBDA:g}', fontsize=9)
  # Below both panels: inside either, it hid points.
  fig.legend(*ax_a.get_legend_handles_labels(), loc='upper center', ncol=3, fontsize=8,
             bbox_to_anchor=(0.5, 0.0))
  return plots.save(fig, outputs.workdir_file(workdir, 'fig5.png'),
                    f'Fig. 5 reproduction: pair verification (cosine, 10-fold threshold) '
                    f'on the test split\n{dataset.title}', bbox_inches='tight')


FIGURES = {'fig2': fig2, 'fig3': fig3, 'fig5': fig5}
