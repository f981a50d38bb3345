"""What `TopLossCAM` costs during training, measured in one run on the bundled pets (64 px, resnet18 body from scratch).

Time: `fine_tune(1, freeze_epochs=1)` (two epochs) with and without the callback, alternating, median of `--reps`, and the
time spent inside the callback's own events, which is what it adds (goal: ≤ 2 % extra). The same for `WatchCAM` (four
images' maps after every epoch) with the `PointingGame` metric (32 images' maps per validation pass), without TopLossCAM
in either fit (goal: ≤ 2 %).
Memory: the peak RSS of a fresh process over one epoch, with the callback minus without, for two validation-set sizes
(goal: the same for both: the callback holds k items, not the validation set). Run `python bench/bench_callback.py`."""
import argparse, json, re, statistics, subprocess, sys, tempfile, time, warnings
warnings.filterwarnings('ignore')

def peak_mb(): return int(re.search(r'VmHWM:\s+(\d+)', open('/proc/self/status').read()).group(1)) / 1024
def reset_peak(): open('/proc/self/clear_refs', 'w').write('5')   # Linux: the peak RSS starts again from now

def learner(n, valid_pct, with_cb, path, seed=0, watch=False):
    from fastcam.all import pets_dls, cam_learner, resnet18, set_seed, WatchCAM, PointingGame, error_rate
    set_seed(seed)
    dls = pets_dls(n=n, size=64, bs=32, valid_pct=valid_pct, num_workers=0, path=path)
    learn = cam_learner(dls, resnet18, pretrained=False, path=tempfile.mkdtemp(), metrics=[error_rate] + ([PointingGame()] if watch else []),
                        cbs=[WatchCAM()] if watch else None)
    if not with_cb: learn.remove_cb(learn.top_loss_cam)
    return learn

def child(n, valid_pct, with_cb, path):
    "One epoch in this fresh process; print the peak RSS over it"
    learn = learner(n, valid_pct, with_cb, path)
    learn.dls.one_batch()
    reset_peak(); base = peak_mb()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 3e-3)
    print(json.dumps(dict(peak=peak_mb() - base, valid=len(learn.dls.valid_ds))))

def timed(cls, names, spent):
    "Wrap `cls`'s methods `names` so that the seconds spent in them add up in `spent`"
    for name in names:
        def wrap(f):
            def g(self, *args, **kwargs):
                t = time.perf_counter()
                try: return f(self, *args, **kwargs)
                finally: spent.append(time.perf_counter() - t)
            return g
        setattr(cls, name, wrap(getattr(cls, name)))

def main(reps, n):
    from fastcam.all import bundled_pets, TopLossCAM
    path = bundled_pets(n, 64)
    times, spent = {True: [], False: []}, []
    timed(TopLossCAM, ('before_fit', 'before_train', 'before_validate', 'after_batch', 'after_validate', 'after_fit'), spent)
    for _ in range(reps):
        for with_cb in (False, True):
            learn = learner(n, 0.2, with_cb, path)
            with learn.no_bar(), learn.no_logging():
                t = time.perf_counter(); learn.fine_tune(1, freeze_epochs=1); times[with_cb].append(time.perf_counter() - t)
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(f'fine_tune(1, freeze_epochs=1) (from scratch: two epochs), {n} images at 64 px, median of {reps}: without {off:.2f} s, with TopLossCAM {on:.2f} s '
          f'({on / off:.3f}x, {100 * (on / off - 1):+.1f} %)')
    own = sum(spent) / reps
    print(f"time spent inside TopLossCAM's own events: {own:.2f} s per fit, {100 * own / on:.1f} % of the fit with it")
    from fastcam.all import WatchCAM, PointingGame
    watch, spent2, spent3 = {True: [], False: []}, [], []
    timed(WatchCAM, ('before_fit', 'after_epoch'), spent2); timed(PointingGame, ('accumulate',), spent3)
    for _ in range(reps):
        for on_ in (False, True):
            learn = learner(n, 0.2, False, path, watch=on_)
            with learn.no_bar(), learn.no_logging():
                t = time.perf_counter(); learn.fine_tune(1, freeze_epochs=1); watch[on_].append(time.perf_counter() - t)
    off, on = statistics.median(watch[False]), statistics.median(watch[True])
    print(f'the same fit without TopLossCAM: without {off:.2f} s, with WatchCAM and PointingGame {on:.2f} s ({on / off:.3f}x, {100 * (on / off - 1):+.1f} %)')
    w, p = sum(spent2) / reps, sum(spent3) / reps
    print(f"time spent inside WatchCAM's events {w:.2f} s per fit ({100 * w / on:.1f} % of the fit), in PointingGame's accumulate {p:.2f} s "
          f"({100 * p / on:.1f} %); both {100 * (w + p) / on:.1f} % (goal ≤ 2 %)")
    for valid_pct in (0.2, 0.8):
        peaks = {}
        for with_cb in (False, True):
            r = subprocess.run([sys.executable, __file__, '--child', str(n), str(valid_pct), str(int(with_cb)), str(path)],
                               capture_output=True, text=True, check=True)
            peaks[with_cb] = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"validation set of {peaks[True]['valid']:4d} images: peak RSS over the epoch {peaks[False]['peak']:.0f} MB without, "
              f"{peaks[True]['peak']:.0f} MB with the callback ({peaks[True]['peak'] - peaks[False]['peak']:+.0f} MB)")

if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == '--child':
        child(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == '1', sys.argv[5]); sys.exit()
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument("--reps", type=int, default=3); p.add_argument('--n', type=int, default=1000)
    a = p.parse_args()
    main(a.reps, a.n)
