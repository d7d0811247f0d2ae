"""python docs/benchmark_page.py

Regenerates docs/benchmark.md and its figures: runs `benchmark:cpu` (every loss tuned
with the same Optuna budget on validation images of class-disjoint folds of 2-digit
MNIST, then retrained over 10 seeds and tested once on the unseen numbers), then writes
the page from the run's config.json, best_settings.json, trials.csv,
summary_by_setting.csv, summary_by_search.csv, comparisons.csv and the runs' wall
times. `python -m cl_research.data.fetch mnist` first (or tfds online); the page states
how long the run took and on which machine.

  python docs/benchmark_page.py --skip-training     # rebuild the page from the run
"""

import glob
import json
import math
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from cl_research import files  # pylint: disable=g-import-not-at-top,wrong-import-position
from cl_research import outputs  # pylint: disable=g-import-not-at-top,wrong-import-position
from cl_research.data import ndigit  # pylint: disable=g-import-not-at-top,wrong-import-position
from docs import pages  # pylint: disable=g-import-not-at-top,wrong-import-position

DOCS = os.path.join(REPO, 'docs')
WORKDIR = os.path.join(REPO, 'runs', 'docs', 'benchmark')
PARAMETER_NAMES = {'learning_rate': 'lr', 'lam': 'lambda', 'alpha': 'alpha', 'scale': 's',
                   'cosface_margin': 'm (CosFace)', 'arcface_margin': 'm (ArcFace)',
                   'sphereface_m': 'm (SphereFace)', 'm2': 'm2', 'm3': 'm3',
                   'contrastive_delta': 'delta', 'git_weight': 'lambda_G/lambda_C',
                   'island_weight': 'lambda_1'}
# (key, column name, scale, number format) of the finals' table
FINAL_COLUMNS = (('test_map_at_r', 'MAP@R (%)', 100, '.1f'),
                 ('test_r_precision', 'R-precision (%)', 100, '.1f'),
                 ('test_precision_at_1', 'P@1 (%)', 100, '.1f'),
                 ('verification_accuracy', 'verif. acc (%)', 100, '.1f'),
                 ('verification_eer', 'EER (%)', 100, '.1f'),
                 ('verification_tar_at_far_1e-2', 'TAR@FAR 1e-2 (%)', 100, '.1f'),
                 ('openset_rank1', 'open-set rank-1 (%)', 100, '.1f'),
                 ('openset_dir_at_fpir_1e-2', 'DIR@FPIR 1e-2 (%)', 100, '.1f'))
METRIC_NAMES = {key: name.replace(' (%)', '') for key, name, _, _ in FINAL_COLUMNS}
PRIMARY = 'test_map_at_r'


def train(extra_args):
  cmd = [sys.executable, '-m', 'cl_research.run', '--config', 'benchmark:cpu', '--workdir',
         WORKDIR, '--config.data.source=tfds', *extra_args]
  print('+', ' '.join(cmd), flush=True)
  subprocess.run(cmd, cwd=REPO, check=True)


def read(name):
  return outputs.read_csv(os.path.join(WORKDIR, name))


def number_counts(data):
  seen, unseen = ndigit.split_numbers(data['num_digits'], data['ndigit_seed'])
  return len(seen), len(unseen)


def setting_text(params):
  return ', '.join(f'{PARAMETER_NAMES.get(k, k)} {v:.3g}' for k, v in params.items())


def deviations_table(config):
  """Every way this run differs from the reality check as powerful-benchmarker runs it."""
  b, d = config['benchmark'], config['data']
  seen, unseen = number_counts(d)
  rows = [
      ('search', 'Ax GPEI (Bayesian optimisation), 50 iterations per loss and dataset',
       f"Optuna multivariate TPE after {b['startup_trials']} random startup trials, "
       f"{b['trials']} trials per loss and search; each trial its own draw, seeded by "
       f"(sampler seed {b['sampler_seed']}, search seed, loss, trial number)"),
      ('searches per loss', '1', f"{len(b['search_seeds'])} (sampler seeds "
       f"{', '.join(map(str, b['search_seeds']))})"),
      ('folds', '4 class-disjoint partitions of the training half; score = mean of 4',
       f"{b['folds']} class-disjoint folds of the {seen} training numbers; score = mean "
       f"MAP@R over folds and trial seeds {tuple(b['trial_seeds'])}"),
      ('validation images', "the fold's own images (the training half's)",
       f"{d['ndigit_validation_images']:,} images of the training numbers composed from "
       f"{d['ndigit_validation_digits']:,} MNIST training digits that no training or test "
       'image uses'),
      ('trunk', 'ImageNet-pretrained BN-Inception / ResNet-50',
       f"LeNets++ from scratch, channels {tuple(config['model']['channels'])}"),
      ('embedding', '128-D (and 512-D concatenated at test)',
       f"{config['sweep']['feature_size'][0]}-D"),
      ('what is tuned', "the loss's parameters (and the classifier's lr); trunk optimizer "
       'fixed (RMSprop lr 1e-6)', "the loss's declared parameters and the network's "
       f"learning rate ({config['optimizer']['name']}, one lr for every parameter)"),
      ('training', 'until validation stops improving',
       f"{config['num_steps']:,} steps of batch {config['batch_size']} "
       f"({config['num_steps'] * config['batch_size'] / d['ndigit_train_images']:.1f} "
       'epochs), the same for every trial and final'),
      ('gradient clip', 'none', f"norm {config['optimizer']['grad_clip_norm']:g} on the "
       f"{config['optimizer']['clip_scope']} (the classifier unclipped); share of clipped "
       'steps in trials.csv and summary.csv'),
      ('classifier', '-', 'outputs for the trained classes only'),
      ('finals', 'the best setting reproduced as 4 fold models, tested separate and '
       'concatenated', f"each search's best setting retrained on all {seen} training "
       f"numbers with seeds {', '.join(map(str, b['seeds']))}, tested once on the "
       f'{unseen} unseen numbers'),
  ]
  lines = ['| | reality check (powerful-benchmarker) | this page |', '| --- | --- | --- |']
  lines += [f'| {a} | {mlrc} | {here} |' for a, mlrc, here in rows]
  return '\n'.join(lines)


def search_table(best, trials, by_search):
  """Per loss and search: startup trials, finished trials, the best trial (its number,
  who proposed it, its rank among the loss's TPE trials), its setting and scores."""
  lines = ['| loss | search | trials (startup + TPE) | best trial | proposed by | '
           'chosen setting | validation MAP@R (%) | test MAP@R (%) of its finals |',
           '| --- ' * 8 + '|']
  finals = {(r['loss'], r['search']): r for r in by_search}
  for loss, per_search in best.items():
    for search, params in per_search.items():
      rows = [t for t in trials if t['loss'] == loss and t['search'] == search
              and t['state'] == 'COMPLETE']
      top = max(rows, key=lambda t: float(t['validation_map_at_r']))
      startup = sum(t['proposed_by'] == 'startup' for t in rows)
      lines.append(
          f"| {loss} | {search} | {startup} + {len(rows) - startup} | {top['trial']} | "
          f"{top['proposed_by']} | {setting_text(params)} | "
          f"{100 * float(top['validation_map_at_r']):.1f} | "
          f"{pages.mean_cell(finals[loss, search], PRIMARY, 100)} |")
  return '\n'.join(lines)


def finals_table(by_setting):
  lines = ['| loss | n | diverged | ' + ' | '.join(name for _, name, _, _ in FINAL_COLUMNS) +
           ' |', '| --- ' * (len(FINAL_COLUMNS) + 3) + '|']
  for r in by_setting:
    cells = [pages.mean_cell(r, key, scale, spec) for key, _, scale, spec in FINAL_COLUMNS]
    lines.append(f"| {r['loss']} | {r['n']} | {r['diverged']} | " + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def mde_cell(c, key):
  value = pages.number(c[key])
  return 'n/a' if math.isnan(value) else f'{100 * value:.2g}'


def comparisons_table(comparisons, metrics):
  lines = ['| loss | minus | metric | n | mean difference (pt) [95% interval], verdict | '
           'p (Holm) | margin (pt) | MDE (pt): alpha 0.05 / Holm |', '| --- ' * 8 + '|']
  for c in comparisons:
    if c['metric'] not in metrics:
      continue
    p_holm = pages.number(c['p_holm'])
    lines.append(
        f"| {c['setting']} | {c['baseline']} | {METRIC_NAMES[c['metric']]} | {c['n']} | "
        f"{pages.cell(c, 100)} | {'n/a' if p_holm != p_holm else format(p_holm, '.2g')} | "
        f"{mde_cell(c, 'margin')} | {mde_cell(c, 'mde')} / {mde_cell(c, 'mde_holm')} |")
  return '\n'.join(lines)


def conclusion(comparisons, config, minutes, machine):
  """The page's answer from the primary metric's verdicts: center loss against softmax,
  against the margin heads, and what the comparisons could have seen."""
  b = config['benchmark']
  primary = [c for c in comparisons if c['metric'] == PRIMARY]
  focus, base = b['focus'], b['baseline']
  versus_base = [(c['setting'], c) for c in primary if c['baseline'] == base]
  versus_focus = [(c['baseline'], c) for c in primary if c['setting'] == focus
                  and c['baseline'] != base]
  center = next(c for c in primary if c['setting'] == focus and c['baseline'] == base)
  seen, unseen = number_counts(config['data'])
  mdes = [100 * pages.number(c['mde_holm']) for c in primary
          if not math.isnan(pages.number(c['mde_holm']))]
  mde_text = (f'{min(mdes):.2g} to {max(mdes):.2g}' if mdes else 'not computable')
  n = len(b['seeds']) * len(b['search_seeds'])
  return (
      f"On {unseen} numbers never seen in training or tuning, each loss tuned with the same "
      f"budget on validation images and its finals paired over {n} (search, seed) pairs, "
      f"MAP@R (the primary metric, one Holm family of {len(primary)} comparisons), "
      f"{focus} minus {base}: {pages.cell(center, 100)} (points of MAP@R, 95% interval, "
      f"verdict). Against {base}: "
      f"{pages.by_verdict(versus_base)}. {focus} against the other losses (its MAP@R "
      f"minus theirs): {pages.by_verdict(versus_focus)}. At the Holm level these "
      f"comparisons could detect MAP@R differences of {mde_text} points (80% power); an "
      "`inconclusive` pair may still differ by less. The answer holds for this scale only: "
      f"{seen} training classes of small grey images, a quarter-width LeNets++ trained for "
      f"{config['num_steps']} steps, one search per loss (how the chosen setting moves "
      "with the search is what `benchmark.search_seeds` measures, 3 searches in the "
      "accelerator config). The whole protocol took "
      f"{minutes:.0f} minutes on {machine}.")


def run_walls():
  """Wall seconds of every trial run and every final run, from their result.json."""
  walls = {}
  for kind in ('trials', 'finals'):
    values = []
    for path in glob.glob(os.path.join(WORKDIR, kind, '**', 'runs', '*', 'result.json'),
                          recursive=True):
      result = files.read_json(path)
      if result and result.get('wall_s'):
        values.append(float(result['wall_s']))
    walls[kind] = values
  return walls


def accelerator_cost(config, accelerator, walls):
  """The accelerator config's size in runs and steps, and what that is at the per-step
  time measured here (its time on an accelerator is not measured here)."""
  b = accelerator['benchmark']
  trial_runs = len(b['losses']) * len(b['search_seeds']) * b['trials'] * b['folds'] * len(
      b['trial_seeds'])
  final_runs = len(b['losses']) * len(b['search_seeds']) * len(b['seeds'])
  steps = (trial_runs + final_runs) * accelerator['num_steps']
  per_step = sum(walls['trials']) / max(len(walls['trials']), 1) / config['num_steps']
  return (
      f"`python -m cl_research.run --config benchmark` (3-digit MNIST, {len(b['losses'])} "
      f"losses, {b['folds']} folds x {b['trials']} trials x {len(b['search_seeds'])} "
      f"searches, {len(b['seeds'])} final seeds, {accelerator['num_steps']:,} steps of "
      f"batch {accelerator['batch_size']}, the full-width net at "
      f"{accelerator['sweep']['feature_size'][0]}-D) is {trial_runs:,} trial runs and "
      f"{final_runs:,} final runs, {steps / 1e6:.1f} million steps. Here one trial run "
      f"took {per_step * 1e3:.0f} ms a step on one core, evaluation and start-up included "
      f"(mean of {len(walls['trials'])} trial runs of {config['num_steps']} steps; the "
      f"final runs took {sum(walls['finals']) / max(len(walls['finals']), 1):.0f} s each "
      "with their evaluators); the accelerator config's steps are larger (4x the "
      "channels, batch 128, 3-digit images), so that rate is a floor of its CPU cost, "
      f"not an estimate of its time on an accelerator, which was not measured: at it, "
      f"{steps * per_step / 3600:,.0f} core-hours.")


def main():
  args, extra = pages.page_args(__doc__)
  if not args.skip_training:
    train(extra)
  pages.copy_figures(WORKDIR, ('optimization.png', 'benchmark.png'), 'benchmark', DOCS)
  with open(os.path.join(WORKDIR, 'config.json')) as f:
    config = json.load(f)
  with open(os.path.join(WORKDIR, 'best_settings.json')) as f:
    best = json.load(f)
  from cl_research.launch import cli  # pylint: disable=import-outside-toplevel
  accelerator = json.loads(cli.load_module(cli.find_experiment('benchmark')).get_config(
      None).to_json_best_effort())
  comparisons = read('comparisons.csv')
  finals = os.path.join(WORKDIR, 'finals')
  first = os.path.join(finals, sorted(os.listdir(finals))[0], 'search0')
  detail = outputs.read_csv(os.path.join(first, 'summary.csv'))[0]['data_detail']
  minutes = outputs.elapsed_minutes(WORKDIR)
  machine = pages.machine(first)
  page = PAGE.format(
      minutes=minutes, machine=machine, detail=detail,
      conclusion=conclusion(comparisons, config, minutes, machine),
      deviations=deviations_table(config),
      search=search_table(best, read('trials.csv'), read('summary_by_search.csv')),
      finals=finals_table(read('summary_by_setting.csv')),
      primary=comparisons_table(comparisons, (PRIMARY,)),
      secondary=comparisons_table(comparisons, tuple(
          k for k in METRIC_NAMES if k != PRIMARY)),
      equivalence=f"{100 * config['benchmark']['equivalence']:g}%",
      cost=accelerator_cost(config, accelerator, run_walls()))
  with open(os.path.join(DOCS, 'benchmark.md'), 'w') as f:
    f.write(page)
  print('wrote', os.path.join(DOCS, 'benchmark.md'))


PAGE = """# A fair benchmark: every loss tuned alike, tested on unseen classes

This page is written by `python docs/benchmark_page.py` from one run of
`python -m cl_research.run --config benchmark:cpu` ({minutes:.0f} minutes on {machine}).
It follows the protocol of the metric-learning reality check (Musgrave, Belongie, Lim,
ECCV 2020; ../shared/spec/benchmark.md): each loss gets the same search budget on
validation images of training classes, then its best setting is tested once on classes
no run ever saw. Where it departs from the reality check is the table below.

## Conclusion

{conclusion}

## How this differs from the reality check

{deviations}

Data: {detail}. The images follow google's n-digit MNIST generator (each a row of MNIST
digits spelling its number; per number and position its digit images drawn without
replacement; train, validation and test from disjoint pools of MNIST digit images, each
split from its own seeded stream) with this project's own generator
(`cl_research/data/ndigit.py`), not google's stored index arrays.

## The search of each loss

Each loss searches only the numbers its head and regularizer declare (and the learning
rate), in the ranges of `benchmark.space` (config.json). `proposed by`: `startup` for a
random startup trial, `tpe` for one the TPE model proposed.

{search}

![validation MAP@R of every trial](figures/benchmark_optimization.png)

## The finals on the unseen numbers

Mean [95% Student-t interval] over the seeds (and searches). MAP@R, R-precision and
precision@1 as pytorch-metric-learning's AccuracyCalculator defines them
(`cl_research/evaluation/retrieval.py`), each unseen-number test image a query against
all others; verification on seeded pairs of unseen-number test images (cosine, 10-fold
threshold); open-set identification among unseen numbers (`cl_research/evaluation/
openset.py`: enrolled numbers, non-mated probes from unseen numbers never enrolled).
`n/a` is a rate the data cannot estimate (fewer than 10 false accepts allowed).

{finals}

![test MAP@R of each loss](figures/benchmark_benchmark.png)

## Comparisons

Every comparison the question needs: each loss against softmax, softmax + center against
every other loss, and a margin head with center loss against the same head without it.
Runs are paired by (search, seed). Each metric's comparisons form one Holm family
(`cl_research/evaluation/statistics.py`); a verdict is `higher` or `lower` when the
Holm-adjusted paired t-test is below 0.05, `equivalent` when instead the difference lies
within the margin (two one-sided tests, Holm-adjusted; the margin is {equivalence} of the
compared-against loss's error, 100 - metric, or the EER itself), `inconclusive` when
neither holds (the runs cannot tell, which is not "no difference"), `n/a` with fewer than
two pairs or differences that do not vary. Intervals are each comparison's own. The
minimum detectable effect (MDE) is the difference a comparison finds 4 times in 5 at the
observed spread: at alpha 0.05, and at the family's first Holm step (0.05 / the family's
size), which is the level a verdict needs.

MAP@R, the primary metric:

{primary}

The other metrics, each its own family:

{secondary}

## What the accelerator config costs

{cost}
"""

if __name__ == '__main__':
  main()
