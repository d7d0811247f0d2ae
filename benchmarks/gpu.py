"""python benchmarks/gpu.py --out runs/gpu

The accelerator run (about 10 minutes planned for one H200): the step benchmark in
float32 and in bfloat16 with vmap groups of K = 1, 2, 4, 8, 16, then `fig3` at the
paper's full settings and the `losses` grid, each through the real command line, then
the face backbones' training images/s (iResNet-18 and -50 at 112x112, float32 and
bfloat16, batch 128: face_bench.py), the face step with Partial FC at 100,000 and
1,000,000 identities (iResNet-50, bfloat16, r 0.1 and 1.0: images/s and step memory) and
`face:synthetic`. Writes `<out>/gpu.json` (the benchmarks' JSON, each run's wall time
and summary rows) and the figures under `<out>/fig3/`, `<out>/losses/`, `<out>/face/`. A
machine that cannot download MNIST reads its IDX files from `--data-dir` (as written by
`python -m cl_research.data.fetch mnist`).

  python benchmarks/gpu.py --out runs/gpu --data-dir ~/.cache/cl_research/data/mnist
  python benchmarks/gpu.py --smoke --out /tmp/gpu      # tiny settings, any CPU, seconds
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GROUPS = '1,2,4,8,16'


def bench(dtype, smoke):
  """bench.py's JSON for one dtype (bfloat16 also times float32 in the same run)."""
  cmd = [sys.executable, os.path.join(REPO, 'benchmarks', 'bench.py'), '--json', '--skip-torch',
         '--dtype', dtype, '--strategies', 'vmap']
  cmd += (['--steps', '2', '--repeats', '1', '--groups', '1,2', '--channels', '4,8,8']
          if smoke else ['--groups', GROUPS])
  return json.loads(run(cmd)[1].strip().splitlines()[-1])


def face_bench(smoke, *args):
  """face_bench.py's JSON: iResNet training images/s and step memory (by default
  iResNet-18 and -50, float32 and bfloat16)."""
  cmd = [sys.executable, os.path.join(REPO, 'benchmarks', 'face_bench.py')]
  cmd += ['--smoke'] if smoke else ['--batch', '128', '--steps', '10']
  return json.loads(run(cmd + list(args))[1].strip().splitlines()[-1])


def run(cmd):
  """(seconds, stdout) of a command that must succeed; its stderr passes through."""
  print('+', ' '.join(cmd), flush=True)
  start = time.perf_counter()
  done = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, check=True)
  return time.perf_counter() - start, done.stdout


def experiment(name, out, data_args):
  """Runs `python -m cl_research.run --config name` into out/<label>; its wall time and rows."""
  label = name.split(':')[0]
  workdir = os.path.join(out, label)
  seconds, _ = run([sys.executable, '-m', 'cl_research.run', '--config', name,
                    '--workdir', workdir, *data_args])
  with open(os.path.join(workdir, 'summary.csv')) as f:
    rows = list(csv.DictReader(f))
  keep = ('name', 'status', 'test_accuracy', 'test_intra_inter', 'verification_accuracy',
          'synthetic_accuracy', 'images_per_s', 'wall_s', 'dtype')
  return {'config': name, 'wall_s': round(seconds, 1),
          'rows': [{k: r.get(k) for k in keep} for r in rows]}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[2])
  parser.add_argument('--out', required=True)
  parser.add_argument('--data-dir', default='',
                      help="MNIST's IDX files, for a machine without internet")
  parser.add_argument('--smoke', action='store_true', help='tiny settings (tests, any CPU)')
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  if args.smoke:
    data_args = ['--config.data.source=bundled']
  elif args.data_dir:
    data_args = ['--config.data.source=tfds', f'--config.data.manual_dir={args.data_dir}']
  else:
    data_args = ['--config.data.source=tfds']  # prepared or downloadable, else one error
  suffix = ':smoke' if args.smoke else ''
  result = {'bench_float32': bench('float32', args.smoke),
            'bench_bfloat16': bench('bfloat16', args.smoke)}
  result['fig3'] = experiment('fig3' + suffix, args.out, data_args)
  result['losses'] = experiment('losses' + suffix, args.out, data_args)
  result['face_bench'] = face_bench(args.smoke)
  for classes in (['1000'] if args.smoke else ['100000', '1000000']):  # Partial FC at scale
    result[f'partial_fc_{classes}'] = face_bench(
        args.smoke, '--classes', classes, '--partial-fc-rates', '0.1,1.0',
        *([] if args.smoke else ['--depths', '50', '--dtypes', 'bfloat16']))
  result['face'] = experiment('face:synthetic' + (',smoke' if args.smoke else ''), args.out,
                              [])
  with open(os.path.join(args.out, 'gpu.json'), 'w') as f:
    json.dump(result, f, indent=1)
  print('wrote', os.path.join(args.out, 'gpu.json'))


if __name__ == '__main__':
  main()
