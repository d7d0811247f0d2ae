"""python docs/openset_page.py

Regenerates docs/openset.md and its figures: runs the `openset` experiment on MNIST and on
Fashion-MNIST (each 60 runs: 2 splits x 2 feature sizes x 5 settings x 3 seeds, pinned
one-core processes), then writes the page from each workdir's summary_by_setting.csv and
comparisons.csv. About 40 minutes on 2 CPU cores; needs `python -m cl_research.data.fetch
mnist` and Debian's `dataset-fashion-mnist` (or tfds online).

  python docs/openset_page.py --skip-training     # rebuild the page from existing runs
"""

import argparse
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from cl_research.evaluation import statistics as analysis  # pylint: disable=g-import-not-at-top,wrong-import-position
from cl_research import outputs  # pylint: disable=g-import-not-at-top,wrong-import-position

DOCS = os.path.join(REPO, 'docs')
RUNS = os.path.join(REPO, 'runs', 'docs')
DATASETS = {'mnist': 'MNIST', 'fashion_mnist': 'Fashion-MNIST'}
METRICS = (('verification_accuracy', 'verif. cosine (%)', 100),
           ('verification_accuracy_l2', 'verif. L2 (%)', 100),
           ('verification_eer', 'EER (%)', 100),
           ('verification_tar_at_far_1e-2', 'TAR@FAR 1e-2 (%)', 100),
           ('openset_rank1', 'rank-1 (%)', 100),
           ('openset_dir_at_far_1e-2', 'DIR@FAR 1e-2 (%)', 100))


def workdir(dataset):
  return os.path.join(RUNS, f'openset_{dataset}')


def train(dataset, extra_args):
  cmd = [sys.executable, '-m', 'cl_research.run', '--config', f'openset:{dataset}',
         '--workdir', workdir(dataset), '--config.data.source=tfds', *extra_args]
  print('+', ' '.join(cmd), flush=True)
  subprocess.run(cmd, cwd=REPO, check=True)


def read(dataset, name):
  return outputs.read_csv(os.path.join(workdir(dataset), name))


def setting_name(row):
  if row['head'] != 'softmax':
    return f"{row['head']} (s {float(row['scale']):g}, m {float(row['margin']):g})"
  if row['regularizer'] == 'none':
    return 'softmax only'
  return f"softmax + center, lambda {float(row['lam']):g}"


def cell(row, key, scale):
  mean, low, high = (float(row[f'{key}_{s}']) * scale for s in ('mean', 'ci95_low',
                                                                 'ci95_high'))
  return f'{mean:.1f} [{low:.1f}, {high:.1f}]'


def settings_table(rows):
  head = ('| unseen | d | setting | n | ' + ' | '.join(name for _, name, _ in METRICS) +
          ' |\n' + '| --- ' * (len(METRICS) + 4) + '|')
  lines = [f"| {r['holdout']} | {r['feature_size']} | {setting_name(r)} | {r['n']} | " +
           ' | '.join(cell(r, k, s) for k, _, s in METRICS) + ' |'
           for r in sorted(rows, key=lambda r: (r['holdout'], int(r['feature_size']),
                                                setting_name(r)))]
  return '\n'.join([head] + lines)


def comparisons_table(rows):
  """Each setting minus softmax-only (paired by seed): the mean difference and its 95%
  interval, in points, with the verdict's sign."""
  keys = [k for k, _, _ in METRICS]
  by_setting = {}
  for r in rows:
    if r['metric'] in keys:
      by_setting.setdefault(r['setting'], {})[r['metric']] = r
  head = ('| setting - softmax only | ' + ' | '.join(name for _, name, _ in METRICS) + ' |\n' +
          '| --- ' * (len(METRICS) + 1) + '|')
  lines = []
  for setting, by_metric in by_setting.items():
    cells = []
    for key, _, scale in METRICS:
      c = {k: float(v) for k, v in by_metric[key].items()
           if k in ('mean_diff', 'ci95_low', 'ci95_high')}
      mark = {'higher': ' (+)', 'lower': ' (-)'}.get(analysis.verdict(by_metric[key]), '')
      cells.append(f"{scale * c['mean_diff']:+.1f} [{scale * c['ci95_low']:+.1f}, "
                   f"{scale * c['ci95_high']:+.1f}]{mark}")
    lines.append(f'| {setting} | ' + ' | '.join(cells) + ' |')
  return '\n'.join([head] + lines)


def verdicts(rows, setting_filter, metric):
  found = [r for r in rows if r['metric'] == metric and setting_filter(r['setting'])]
  counts = {v: 0 for v in ('higher', 'lower', 'no clear difference')}
  for r in found:
    counts[analysis.verdict(r)] += 1
  return counts, len(found)


def answer(rows):
  lines = []
  for name, test in (('center loss (lambda 0.01, 0.1)', lambda s: 'head=' not in s),
                     ('CosFace and ArcFace', lambda s: 'head=' in s)):
    for metric, label, _ in METRICS:
      counts, n = verdicts(rows, test, metric)
      if metric == 'verification_eer':  # lower EER is better
        counts['higher'], counts['lower'] = counts['lower'], counts['higher']
      lines.append(f'- {name}, {label}: better than softmax-only in **{counts["higher"]} of '
                   f'{n}** (split x d x setting) comparisons, worse in {counts["lower"]}, '
                   f'not clearly different in {counts["no clear difference"]}.')
  return '\n'.join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[2])
  parser.add_argument('--skip-training', action='store_true')
  args, extra = parser.parse_known_args()
  sections = []
  for dataset, title in DATASETS.items():
    if not args.skip_training:
      train(dataset, extra)
    shutil.copy(os.path.join(workdir(dataset), 'roc.png'),
                os.path.join(DOCS, 'figures', f'openset_roc_{dataset}.png'))
    summary = read(dataset, 'summary.csv')
    comparisons = [r for r in read(dataset, 'comparisons.csv')]
    sections.append(SECTION.format(
        title=title, dataset=dataset, detail=summary[0]['data_detail'],
        steps=summary[0]['num_steps'], answer=answer(comparisons),
        minutes=outputs.elapsed_minutes(workdir(dataset)), runs=len(summary),
        settings=settings_table(read(dataset, 'summary_by_setting.csv')),
        comparisons=comparisons_table(comparisons)))
  with open(os.path.join(DOCS, 'openset.md'), 'w') as f:
    f.write(PAGE_HEAD + ''.join(sections))
  print('wrote', os.path.join(DOCS, 'openset.md'))


PAGE_HEAD = """# Open-set verification and identification

Center loss exists for open-set problems: faces of people never seen in training are
compared, not classified. This page asks the same of digits and clothes, and is written
by `python docs/openset_page.py`; every number on it comes from the runs that command
makes (`python -m cl_research.run --config openset:DATASET`, seeds 0, 1, 2, each run on one
pinned core).

Protocol (experiments/openset.py): train on six classes, evaluate on the four held out
(two splits: unseen 6-9, unseen 0-3), 2-D and 64-D features, quarter-width LeNets++ at
the CPU budget. On the unseen classes' test images: 6,000 distinct verification pairs
(10-fold accuracy by cosine and by Euclidean distance, EER, TAR at FAR 1e-2), and
open-set identification (a gallery of one template per unseen class, the mean of 5
enrolment images; probes: the unseen classes' other images and every seen-class test
image as non-mated; rank-1, and DIR at FAR 1e-2 of the non-mated probes).

Numbers are means over 3 seeds with their 95% Student-t interval; a comparison pairs
runs by seed and gives the mean difference and its interval, marked (+) when the
interval lies above 0 and (-) below (for EER, lower is better, so (+) is worse). Three
seeds make wide intervals, reported as computed (not clipped to [0, 100]): "not clearly
different" is common and is not evidence of no effect.

"""

SECTION = """## {title}

Data: {detail}; {steps} steps of 64; {runs} runs in {minutes:.1f} min on 2 CPU cores
(config.json to summary.csv).

### The answer, counted

{answer}

### Every setting

{settings}

### Against softmax-only, paired by seed

{comparisons}

![ROC, {title}](figures/openset_roc_{dataset}.png)

"""


if __name__ == '__main__':
  main()
