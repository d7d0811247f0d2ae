"""Matplotlib figures in the style of ECCV16 Fig. 2/3: one color per class, centers as
white dots with a dark edge, 2-D features drawn directly and higher ones by PCA."""

import os
import re

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np
from sklearn.decomposition import PCA

from cl_research import files
from cl_research.configs import sweeps
from cl_research.evaluation import clustering as metrics
from cl_research.evaluation import statistics

CLASS_COLORS = plt.get_cmap('tab10').colors
LEGEND_CLASSES = 20  # classes named in a legend; colours repeat past ten


def projection_2d(features_NxD):
  """(f, suffix, axis labels): f maps D-dim points to 2-D (identity for D = 2, else the
  PCA fit here); suffix says so in a title."""
  d = features_NxD.shape[1]
  if d == 2:
    return lambda x: np.asarray(x)[:, :2], '', ('feature 1', 'feature 2')
  if d == 1:
    return (lambda x: np.concatenate([np.asarray(x), np.zeros((len(x), 1))], axis=1),
            ' (1-D)', ('feature 1', ''))
  pca = PCA(n_components=2).fit(features_NxD)
  return pca.transform, f' (PCA of {d}-D)', ('PC1', 'PC2')


def project_or_none(project, points):
  """`project` of `points` (centers); rows that are NaN (a class without a center: not
  in the run's classifier) stay NaN, so they are not drawn."""
  if points is None:
    return None
  points = np.asarray(points)
  known = np.isfinite(points).all(axis=1)
  out = np.full((len(points), 2), np.nan)
  if known.any():
    out[known] = project(points[known])
  return out


def wrap(text, width):
  """Wraps each line of `text` to `width` characters, breaking only after ', ' or ': '
  so that a label and its number stay together."""
  out = []
  for line in text.split('\n'):
    pieces = re.split(r'(?<=[,:]) ', line)
    current = ''
    for piece in pieces:
      if current and len(current) + 1 + len(piece) > width:
        out.append(current)
        current = piece
      else:
        current = f'{current} {piece}' if current else piece
    out.append(current)
  return '\n'.join(out)


def subsample(num_points, max_points, seed=0):
  """Deterministic index subset so plots of big splits stay readable and fast."""
  if num_points <= max_points:
    return np.arange(num_points)
  return np.sort(np.random.default_rng(seed).choice(num_points, max_points, replace=False))


def scatter_panel(ax, points_Nx2, labels_N, centers_Cx2, title, class_names,
                  axis_labels=('feature 1', 'feature 2')):
  """Draws one panel: a colored cloud per class and the centers as white dots. The
  figure's legend goes outside the panels (`legend_outside`), where it hides nothing."""
  for c, name in enumerate(class_names):
    members = points_Nx2[labels_N == c]
    ax.scatter(members[:, 0], members[:, 1], s=2, color=CLASS_COLORS[c % 10],
               label=name if c < LEGEND_CLASSES else None, rasterized=True, linewidths=0)
  if centers_Cx2 is not None:
    ax.scatter(centers_Cx2[:, 0], centers_Cx2[:, 1], s=40, c='white', edgecolors='black',
               linewidths=1.2, zorder=3, label='centers')
  ax.set_title(title, fontsize=9)
  ax.set_xlabel(axis_labels[0], fontsize=8)
  ax.set_ylabel(axis_labels[1], fontsize=8)
  ax.tick_params(labelsize=7)


def enlarge_markers(legend):
  for handle in legend.legend_handles:
    if hasattr(handle, 'set_sizes'):  # scatter markers (a histogram's entries are lines)
      handle.set_sizes([40 if handle.get_label() == 'centers' else 12])


def save(fig, path, title=None, dpi=110, bbox_inches=None):
  """Adds the figure title (wrapped to the figure's width), lays out, writes the PNG and
  frees the figure. `bbox_inches='tight'` keeps a legend outside the axes (at the cost of
  drawing the figure twice)."""
  if title:
    chars = max(40, int(fig.get_figwidth() * 13))  # about 13 characters per inch at 10 pt
    fig.suptitle(wrap(title, chars), fontsize=10)
  fig.tight_layout()
  with files.atomic_path(path) as tmp:
    fig.savefig(tmp, dpi=dpi, bbox_inches=bbox_inches)
  plt.close(fig)
  return path


def empty_panel(ax, title, message):
  ax.set_title(title, fontsize=9)
  ax.text(0.5, 0.5, message, ha='center', va='center', transform=ax.transAxes)
  ax.set_xticks([])
  ax.set_yticks([])


def direction_panel(ax, features_NxD, labels_N, centers_CxD, title, class_names):
  """The features' directions, as the angular heads see them. 2-D: a histogram of each
  class's feature angle (5-degree bins; a class's arc is its peak, its width the
  spread), the centers' angles as dashed lines of the class colour. 3-D: on the sphere
  (`ax` a 3-D axes). Else: the PCA of the unit vectors, centers as white dots."""
  points = metrics.unit_vectors(features_NxD)
  centers = None if centers_CxD is None else metrics.unit_vectors(centers_CxD)
  if points.shape[1] == 3 and getattr(ax, 'name', '') == '3d':
    for c, name in enumerate(class_names):
      m = points[labels_N == c]
      ax.scatter(m[:, 0], m[:, 1], m[:, 2], s=2, color=CLASS_COLORS[c % 10],
                 label=name if c < LEGEND_CLASSES else None, linewidths=0, depthshade=False)
    if centers is not None:
      ax.scatter(*centers.T, s=40, c='white', edgecolors='black', linewidths=1.2,
                 label='centers', depthshade=False)
    ax.set_title(title, fontsize=9)
    ax.set_box_aspect((1, 1, 1))
    ax.tick_params(labelsize=6)
    return
  if points.shape[1] == 2:
    angle_N = np.degrees(np.arctan2(points[:, 1], points[:, 0]))
    bins = np.linspace(-180, 180, 73)
    for c, name in enumerate(class_names):
      ax.hist(angle_N[labels_N == c], bins, histtype='step', lw=1.2, color=CLASS_COLORS[c % 10],
              label=name if c < LEGEND_CLASSES else None)
    if centers is not None:
      for c, (x, y) in enumerate(centers[:len(class_names)]):
        ax.axvline(np.degrees(np.arctan2(y, x)), color=CLASS_COLORS[c % 10], ls='--', lw=0.8)
      ax.plot([], [], color='0.3', ls='--', lw=0.8, label='centers')
    ax.set_xlim(-180, 180)
    ax.set_xticks(range(-180, 181, 90))
    ax.set_xlabel('feature angle (degrees)', fontsize=7)
    ax.set_ylabel('test images per 5 degrees', fontsize=7)
    ax.tick_params(labelsize=6)
    ax.set_title(title, fontsize=9)
    return
  project, suffix, axis_labels = projection_2d(points)
  scatter_panel(ax, project(points), labels_N, project_or_none(project, centers),
                f'{title}{suffix}', class_names, axis_labels=axis_labels)


def plot_run(features, title, class_names, path, max_points=10_000, directions=False):
  """Train and test scatter side by side for one run, projected by the train PCA, and
  with `directions` (the angular heads) the test features' directions beside them.

  features None (a diverged run) draws two empty, labelled panels.
  """
  fig = plt.figure(figsize=(15 if directions else 10, 4.6))
  axes = [fig.add_subplot(1, 3 if directions else 2, k + 1) for k in range(2)]
  if features is None:
    for ax, split in zip(axes, ('train', 'test')):
      empty_panel(ax, split, 'diverged: no finite features')
    save(fig, path, title)
    return
  project, suffix, axis_labels = projection_2d(features['train_features'])
  for ax, split in zip(axes, ('train', 'test')):
    feats, labels = features[f'{split}_features'], features[f'{split}_labels']
    keep = subsample(len(labels), max_points)
    shown = f', {len(keep)} of {len(labels)} shown' if len(keep) < len(labels) else ''
    scatter_panel(ax, project(feats[keep]), labels[keep],
                  project_or_none(project, features['centers']),
                  f'{split}{suffix}{shown}', class_names, axis_labels=axis_labels)
  if directions:
    d = features['test_features'].shape[1]
    ax = fig.add_subplot(1, 3, 3, projection='3d' if d == 3 else None)
    keep = subsample(len(features['test_labels']), max_points)
    direction_panel(ax, features['test_features'][keep], features['test_labels'][keep],
                    features['centers'], 'test directions', class_names)
    axes.append(ax)
  legend_outside(fig, axes)
  save(fig, path, title, bbox_inches='tight')


def plot_grid(cells, row_names, col_names, title, class_names, path, max_points=5_000,
              directions=False):
  """A grid of test-feature scatters (or, with `directions`, of their directions).

  cells: {(i, j): dict with 'features' (as in plot_run, None for a run without finite
  features) and 'label'} for row i and column j; a missing key draws an empty panel.
  `row_names` and `col_names` head the panels ('d=2', 'lambda=0.1').
  """
  fig, axes = plt.subplots(len(row_names), len(col_names), squeeze=False,
                           figsize=(3.2 * len(col_names), 3.1 * len(row_names)))
  for i, row in enumerate(row_names):
    for j, col in enumerate(col_names):
      ax, cell = axes[i, j], cells.get((i, j))
      head = f'{row}, {col}'
      if cell is None or cell['features'] is None:
        empty_panel(ax, head, cell['label'] if cell else 'no run')
        continue
      feats = cell['features']
      keep = subsample(len(feats['test_labels']), max_points)
      if directions:
        direction_panel(ax, feats['test_features'][keep], feats['test_labels'][keep],
                        feats['centers'], wrap(f'{head}\n{cell["label"]}', 44), class_names)
        continue
      project, suffix, axis_labels = projection_2d(feats['train_features'])
      points = project(feats['test_features'][keep])
      extent = float(f'{np.max(np.abs(points)) if len(points) else 0.0:.2g}')
      scatter_panel(ax, points, feats['test_labels'][keep],
                    project_or_none(project, feats['centers']),
                    wrap(f'{head}{suffix}, axes ±{extent:g}\n{cell["label"]}', 44),
                    class_names, axis_labels=axis_labels)
  legend_outside(fig, axes)
  save(fig, path, title, dpi=100, bbox_inches='tight')


def legend_entries(axes):
  """(handles, labels) of every panel's entries, each label once: one panel may lack an
  entry another has (centers, a setting)."""
  by_label = {}
  for ax in np.ravel(axes):
    for handle, label in zip(*ax.get_legend_handles_labels()):
      by_label.setdefault(label, handle)
  return list(by_label.values()), list(by_label)


def legend_outside(fig, axes):
  """One legend for all panels, right of them, where it hides no cluster (save the
  figure with `bbox_inches='tight'` to keep it)."""
  handles, labels = legend_entries(axes)
  if handles:
    one_row = np.ndim(axes) < 2 or np.shape(axes)[0] == 1
    enlarge_markers(fig.legend(handles, labels, loc='center left', bbox_to_anchor=(1.01, 0.5),
                               fontsize=8, framealpha=0.7, ncol=2 if one_row else 1))


def plot_intra_histogram(distances_N, labels_N, class_names, title, path):
  """Per-class histograms of feature-to-class-mean distances (IJCV19 Fig. 6 style)."""
  fig, ax = plt.subplots(figsize=(7, 4.6))
  bins = np.linspace(0, np.percentile(distances_N, 99.5) if len(distances_N) else 1, 40)
  for c, name in enumerate(class_names):
    ax.hist(distances_N[labels_N == c], bins=bins, histtype='step', color=CLASS_COLORS[c % 10],
            label=name if c < LEGEND_CLASSES else None, density=True)
  ax.set_xlabel('distance to class mean')
  ax.set_ylabel('density')
  ax.legend(fontsize=6, ncol=2)
  save(fig, path, title, dpi=100)


def scatter_image(features_NxD, labels_N, centers_CxD, title, class_names):
  """The 2-D scatter of features (PCA above 2-D) with their centers, as an H x W x 3
  uint8 array (for TensorBoard's images)."""
  project, suffix, axis_labels = projection_2d(features_NxD)
  fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=80)
  scatter_panel(ax, project(features_NxD), labels_N, project_or_none(project, centers_CxD),
                f'{title}{suffix}', class_names, axis_labels=axis_labels)
  fig.tight_layout()
  fig.canvas.draw()
  rgb_HxWx3 = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
  plt.close(fig)
  return rgb_HxWx3


def write_evolution_gif(snapshots, labels_N, class_names, title, path, fps=4):
  """Animated scatter of test features over training, on fixed axes so motion shows.

  snapshots: list of (step, features_NxD, centers_CxD). Features above 2-D are projected
  by the PCA of the last snapshot, the same map for every frame.
  """
  from matplotlib import animation  # pylint: disable=import-outside-toplevel
  project, suffix, axis_labels = projection_2d(snapshots[-1][1])
  frames = [(step, project(f), project(c)) for step, f, c in snapshots]
  points = np.concatenate([np.concatenate([f, c]) for _, f, c in frames])
  points = points[np.isfinite(points).all(axis=1)]
  lo, hi = np.percentile(points, 0.5, axis=0), np.percentile(points, 99.5, axis=0)
  pad = 0.05 * (hi - lo + 1e-9)
  fig, ax = plt.subplots(figsize=(5, 5))

  def draw(i):
    ax.clear()
    step, feats, centers = frames[i]
    scatter_panel(ax, feats, labels_N, centers, f'{title}{suffix}\nstep {step}', class_names,
                  axis_labels=axis_labels)
    ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
    ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])

  anim = animation.FuncAnimation(fig, draw, frames=len(frames))
  with files.atomic_path(path) as tmp:
    anim.save(tmp, writer=animation.PillowWriter(fps=fps))
  plt.close(fig)


def plot_face_verification(workdir, results, val_names, path):
  """Verification accuracy over training steps (read from each run's metrics.jsonl), one
  panel per validation pack, one line per run with error bars of +- the std over the
  10 folds (of the one pair set: not run-to-run variation), chance marked; one legend
  under the panels."""
  fig, axes = plt.subplots(1, len(val_names), figsize=(5.5 * len(val_names), 4),
                           squeeze=False)
  for ax, val in zip(axes[0], val_names):
    for r in results:
      rows = files.read_jsonl(os.path.join(workdir, 'runs', r['name'], 'metrics.jsonl'))
      points = [(row['step'], row[f'{val}_accuracy'], row.get(f'{val}_accuracy_std') or 0.0)
                for row in rows if f'{val}_accuracy' in row]
      if points:
        steps, accuracy, std = map(np.array, zip(*points))
        ax.errorbar(steps, accuracy, yerr=std, marker='o', markersize=3, capsize=3, lw=1,
                    label=sweeps.describe_point(r, ('head', 'regularizer', 'lam', 'scale',
                                                    'margin', 'feature_size', 'seed')))
    ax.axhline(0.5, color='grey', linestyle=':', label='chance')
    ax.set_title(f'{val}: 10-fold verification accuracy (bars: +- std over folds)',
                 fontsize=9)
    ax.set_xlabel('training step')
    ax.set_ylabel('accuracy')
  handles, labels = legend_entries(axes)
  fig.legend(handles, labels, loc='upper center', bbox_to_anchor=(0.5, 0.0), fontsize=8,
             ncol=min(len(labels), 2))
  return save(fig, path, title='face verification of the validation pairs during training',
              bbox_inches='tight')


def plot_benchmark(trials, finals, losses, optimization_path, benchmark_path, data_title):
  """optimization.png: validation MAP@R of each loss's trials in the order they ran,
  random startup trials as hollow circles and TPE's as filled ones, the running best as
  a line (one panel per search seed); benchmark.png: each loss's test MAP@R over the
  final seeds, mean with its 95% Student-t interval and the seeds as dots."""
  searches = sorted({r['search'] for r in trials})
  fig, axes = plt.subplots(1, len(searches), figsize=(7 * len(searches), 4.5), squeeze=False)
  for ax, search in zip(axes[0], searches):
    for i, loss in enumerate(losses):
      rows = sorted((r for r in trials if r['loss'] == loss and r['search'] == search
                     and r['validation_map_at_r'] is not None), key=lambda r: r['trial'])
      if not rows:
        continue
      color = f'C{i}'
      for by, style in (('startup', 'none'), ('tpe', color)):
        mine = [r for r in rows if r.get('proposed_by') == by]
        ax.plot([r['trial'] for r in mine], [r['validation_map_at_r'] for r in mine], 'o',
                color=color, markerfacecolor=style, alpha=0.7)
      ax.plot([r['trial'] for r in rows],
              np.maximum.accumulate([r['validation_map_at_r'] for r in rows]), '-',
              color=color, drawstyle='steps-post', label=loss)
    ax.plot([], [], 'o', color='0.4', markerfacecolor='none', label='random startup trial')
    ax.plot([], [], 'o', color='0.4', label='TPE trial')
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel('trial')
    ax.set_ylabel('validation MAP@R (mean over folds)')
    ax.set_title(f'search seed {search}; lines: best so far', fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc='lower right')
  save(fig, optimization_path, f'Search: validation images of training classes only\n{data_title}')
  fig, ax = plt.subplots(figsize=(7, 4))
  for i, loss in enumerate(losses):
    values = [r['test_map_at_r'] for r in finals if r['loss'] == loss
              and r.get('status') == 'complete' and r.get('test_map_at_r') is not None]
    mean, _, low, high = statistics.mean_interval(values)
    ax.plot([i] * len(values), values, '.', color='grey', label='a seed' if i == 0 else None)
    if low == low:
      ax.errorbar([i], [mean], yerr=[[mean - low], [high - mean]], fmt='o', color=f'C{i}',
                  capsize=5, label='mean, 95% interval' if i == 0 else None)
  ax.set_xticks(range(len(losses)))
  ax.set_xlim(-0.5, len(losses) - 0.5)
  ax.set_xticklabels(losses, fontsize=8)
  ax.set_ylabel('test MAP@R (unseen classes)')
  ax.grid(alpha=0.3, axis='y')
  ax.legend(fontsize=7)
  save(fig, benchmark_path, f'Best setting of each loss, retrained over seeds\n{data_title}')
