"""How fast the `fastcam` command answers: `--help` and a wrong option, against importing fastai (what it took before
the command parsed first). Goal: every answer under 1 s. Medians of 5 runs, measured in this one run."""
import statistics, subprocess, sys, time
from pathlib import Path

FASTCAM = Path(sys.executable).parent/'fastcam'       # the entry point pip installed beside this python

def seconds(cmd, n=5)->float:
    "Median wall time of running `cmd` `n` times (one warm-up run first, so the file cache is not measured)"
    subprocess.run(cmd, capture_output=True)
    ts = []
    for _ in range(n):
        t = time.perf_counter(); subprocess.run(cmd, capture_output=True); ts.append(time.perf_counter() - t)
    return statistics.median(ts)

if __name__ == '__main__':
    fastai = seconds([sys.executable, '-c', 'import fastai.vision.all'])
    rows = [('fastcam --help', [FASTCAM, '--help']), ('fastcam demo --help', [FASTCAM, 'demo', '--help']),
            ('fastcam explain --help', [FASTCAM, 'explain', '--help']),
            ('fastcam demo --epochs x  (argparse error)', [FASTCAM, 'demo', '--epochs', 'x']),
            ('fastcam demo --arch vgg  (a wrong value)', [FASTCAM, 'demo', '--arch', 'vgg'])]
    print(f"{'command':44} {'seconds':>8} {'vs import fastai.vision.all':>28}")
    base = 'python -c "import fastai.vision.all"'
    print(f"{base:44} {fastai:8.2f} {1:27.2f}x")
    worst = 0.
    for name, cmd in rows:
        s = seconds([str(o) for o in cmd]); worst = max(worst, s)
        print(f'{name:44} {s:8.2f} {s / fastai:27.2f}x')
    print(f"slowest answer {worst:.2f} s: {'within' if worst < 1 else 'OVER'} the 1 s goal")
