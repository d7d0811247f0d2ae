"""python benchmarks/clustering_vs_data.py --json

How much center loss tightens the TEST features: for each training-set size, the
default sweep's 2-D runs at lambda 0 and lambda 1 (same steps, width and solver; one
pair per seed), and the factor test intra/inter(lambda 0) / test intra/inter(lambda 1).
It measures how the factor depends on the number of training digits and, with
`--config.x=...`, on anything else; docs/cpu_budget.md holds what it measured. A script,
not a test: a pair takes about a minute on 2 CPU cores at the sweep's budget.

  python benchmarks/clustering_vs_data.py --num-train 1000,2000,4000 --seeds 0,1,2
  python benchmarks/clustering_vs_data.py --config.data.augment_shift=2 --config.num_steps=1200

`--config.field=value` changes a field of the `sweep` config for every run, as on the
`cl_research.run` command line. With full MNIST (`python -m cl_research.data.fetch mnist`, or
tfds online) sizes up to 60000 work; on the bundled digits, up to 4000.
"""

import argparse
import json
import os
import statistics
import tempfile

from cl_research.engine import experiment
from cl_research.launch import cli as run
from cl_research.engine import checks
def sweep_config(num_train, seeds, overrides):
  """The `sweep` config reduced to 2-D features, lambda 0 and 1, and `seeds`."""
  argv = ['clustering_vs_data', '--config', 'sweep', "--config.sweep.lam=(0.0, 1.0)",
          '--config.sweep.feature_size=(2,)', f'--config.sweep.seed={tuple(seeds)}',
          '--config.evals.verification.pairs=0', f'--config.data.num_train={num_train}']
  config, _, _ = run.parse(argv + overrides)
  checks.validate(config)
  return config


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--num-train', default='1000,2000,4000')
  parser.add_argument('--seeds', default='0,1,2')
  parser.add_argument('--workdir', default='', help='default: a temporary folder')
  parser.add_argument('--json', action='store_true', help='print one JSON object last')
  args, overrides = parser.parse_known_args()
  bad = [a for a in overrides if not a.startswith('--config.')]
  if bad:
    parser.error(f'unrecognized arguments: {" ".join(bad)}')
  sizes = [int(n) for n in args.num_train.split(',')]
  seeds = [int(s) for s in args.seeds.split(',')]
  configs_by_size = {n: sweep_config(n, seeds, overrides) for n in sizes}  # errors first
  root = args.workdir or tempfile.mkdtemp(prefix='clustering_vs_data_')
  rows = []
  for n, config in configs_by_size.items():
    results = experiment.train_and_evaluate(config, os.path.join(root, f'num_train={n}'))
    by = {(r['seed'], r['lam']): r for r in results}
    factors = [by[s, 0.0]['test_intra_inter'] / by[s, 1.0]['test_intra_inter'] for s in seeds]
    rows.append({
        'num_train': n, 'data_source': results[0]['data_source'], 'factors': factors,
        'median_factor': statistics.median(factors),
        'test_intra_inter_lam0': [by[s, 0.0]['test_intra_inter'] for s in seeds],
        'test_intra_inter_lam1': [by[s, 1.0]['test_intra_inter'] for s in seeds],
        'test_accuracy_lam0': [by[s, 0.0]['test_accuracy'] for s in seeds],
        'test_accuracy_lam1': [by[s, 1.0]['test_accuracy'] for s in seeds]})
    r = rows[-1]
    print(f"num_train {n:6d}: factor median {r['median_factor']:.2f} (seeds "
          f"{', '.join(f'{f:.2f}' for f in factors)}); test acc lam0 "
          f"{statistics.mean(r['test_accuracy_lam0']):.3f}, lam1 "
          f"{statistics.mean(r['test_accuracy_lam1']):.3f}", flush=True)
  print(f'outputs: {root}')
  if args.json:
    print(json.dumps({'seeds': seeds, 'overrides': overrides, 'sizes': rows}))


if __name__ == '__main__':
  main()
