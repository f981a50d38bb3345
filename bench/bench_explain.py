"""`fastcam explain` on the bundled set (2000 images, 96 px, an exported resnet18 `cam_learner`, CAM maps): images per
second with 0 and 2 DataLoader workers against `learn.get_preds` on the same files and batch size (what the model
alone costs with fastai's own reading; goal: explain within 1.3x of it), then the whole command with 1 process and with
2 (`torchrun --nproc_per_node 2`, one thread each), start-up included. The measurements take turns, `--rounds` times,
and each line is its best round: a shared machine's noise (±10 % from one run to the next here) only ever adds time.
One run; run `python bench/bench_explain.py`."""
import argparse, contextlib, io, os, shutil, subprocess, sys, tempfile, time, warnings
warnings.filterwarnings('ignore')
from pathlib import Path

def main(n, bs, rounds):
    import torch
    from fastcam.all import bundled_pets, pets_dls, cam_learner, resnet18, set_seed, explain_images, load_learner
    tmp = Path(tempfile.mkdtemp())
    try:
        set_seed(0)
        root = bundled_pets(n, 96)
        files = sorted((root/'images').iterdir())[:n]
        dls = pets_dls(n=n, size=96, bs=bs, num_workers=0)
        cam_learner(dls, resnet18, pretrained=False, path=tmp, cbs=[]).export(tmp/'model.pkl')
        learn = load_learner(tmp/'model.pkl', cpu=True)
        print(f'{len(files)} images of 96 px, resnet18, batch {bs}, torch {torch.__version__}, {torch.get_num_threads()} threads, best of {rounds} rounds')
        def timed(f):
            t = time.perf_counter(); f(); return time.perf_counter() - t
        def explain(w, out):
            with contextlib.redirect_stdout(io.StringIO()):                # its progress bar and summary line
                explain_images(learn, str(root/'images'), out=str(tmp/out), bs=bs, num_workers=w)
        cmd = [str(Path(sys.executable).parent/'fastcam'), 'explain', str(tmp/'model.pkl'), str(root/'images'), '--bs', str(bs)]
        env = {**os.environ, 'OMP_NUM_THREADS': '1'}                      # torchrun's own default, set here so that an exported value can't oversubscribe
        command = lambda args, out, **kw: subprocess.run(args + ['--out', str(tmp/out)], check=True, capture_output=True, **kw)
        runs = {'get_preds': lambda r: learn.get_preds(dl=learn.dls.test_dl(files, bs=bs, num_workers=0)),
                'w0': lambda r: explain(0, f'w0-{r}'), 'w2': lambda r: explain(2, f'w2-{r}'),
                'p1': lambda r: command(cmd, f'p1-{r}'),
                'p2': lambda r: command([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--no-python'] + cmd, f'p2-{r}', env=env)}
        best = {k: float('inf') for k in runs}
        with learn.no_bar():
            for r in range(rounds):
                for k, f in runs.items(): best[k] = min(best[k], timed(lambda: f(r)))
        base, one = best['get_preds'], best['p1']
        print(f'{"learn.get_preds (fastai reads the files)":44} {base:6.1f} s  {len(files) / base:6.0f} images/s  1.00x')
        for w in (0, 2):
            s = best[f'w{w}']
            print(f'{f"explain_images, num_workers={w}":44} {s:6.1f} s  {len(files) / s:6.0f} images/s  {s / base:.2f}x')
        print(f'{"fastcam explain, 1 process (2 threads)":44} {one:6.1f} s  {1000 * one / len(files):6.1f} ms/image  1.00x')
        two = best['p2']
        print(f'{"fastcam explain, 2 processes (1 thread each)":44} {two:6.1f} s  {1000 * two / len(files):6.1f} ms/image  {two / one:.2f}x')
    finally: shutil.rmtree(tmp, ignore_errors=True)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n', type=int, default=2000); p.add_argument('--bs', type=int, default=32); p.add_argument('--rounds', type=int, default=3)
    main(**vars(p.parse_args()))
