"""Where the README's session spends its time, on this CPU and on an AVX2-only one, and what bfloat16 and other settings buy.

The session is the README's: `pets_dls()` → `cam_learner(dls, resnet34, metrics=error_rate)` → `fine_tune(1)` →
`show_cam()`, offline (no weights to be had, even where they could be: the body one group shorter, three epochs
from scratch). Each run is a fresh process, timed from before `import fastcam` to after
`show_cam`; a callback splits the fit into loading and computing, training and validation. `--avx2` runs it the way a
CPU without AVX-512 or bfloat16 does (`ATEN_CPU_CAPABILITY=avx2`, `ONEDNN_MAX_CPU_ISA=AVX2`, float32): an approximation
of such a CPU, not one. `--variant` changes one setting at a time (see `VARIANTS`); `--seeds 0 1 2` repeats each.
`--steps` prints the old measurement instead: training steps per second in float32 and bfloat16.
Run `python bench/bench_train.py --avx2 --variant chapter layer3 --seeds 0 1 2`."""
import argparse, json, os, statistics, subprocess, sys, time, warnings
warnings.filterwarnings('ignore')

L3 = dict(pretrained=False)   # the whole body `min_map` gives (layer3 at 96 px) and five epochs: the session before issue 29
VARIANTS = {  # name: (what it changes, pets_dls kwargs, cam_learner kwargs, fine_tune kwargs)
    'chapter': ("the README's session as it is (offline: the body to layer2, 3 epochs)", {}, {}, {}),
    'fe3': ("4 epochs", {}, {}, dict(freeze_epochs=3)),
    'lr3': ("1.5 times the learning rate", {}, {}, dict(base_lr=3e-3)),
    'bs16': ("batch size 16", dict(bs=16), {}, {}),
    'layer3': ("the body to layer3 (pretrained=False), 5 epochs: the session before", {}, L3, {}),
    'l3bs16': ("layer3, batch size 16", dict(bs=16), L3, {}),
    'l3fe2': ("layer3, 3 epochs", {}, L3, dict(freeze_epochs=2)),
    'l3px64': ("layer3, 64 px images", dict(size=64), L3, {}),
    'l3fe2bs16': ("layer3, batch 16, 3 epochs", dict(bs=16), L3, dict(freeze_epochs=2)),
    'l3px80': ("layer3, 80 px images, batch 16, 3 epochs", dict(size=80, bs=16), L3, dict(freeze_epochs=2)),
    'l3n1200': ("layer3, 1200 images (960 to train), batch 16, 3 epochs", dict(n=1200, bs=16), L3, dict(freeze_epochs=2)),
    'l3lr': ("layer3, batch 16, 3 epochs at twice the learning rate", dict(bs=16), L3, dict(freeze_epochs=2, base_lr=4e-3)),
}

def cpu():
    "The CPU's name and the flags that decide training speed"
    name, flags = 'unknown CPU', set()
    try:
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'): name = line.split(':', 1)[1].strip()
            if line.startswith('flags'): flags = set(line.split(':', 1)[1].split()); break
    except OSError: pass
    return name, [f for f in ('avx2', 'fma', 'avx512f', 'avx512_bf16', 'amx_bf16') if f in flags]

def child(variant, seed):
    "One session in this process; prints its times and error as JSON"
    t0 = time.perf_counter()
    from fastcam.all import pets_dls, cam_learner, resnet34, error_rate, set_seed, Callback
    import torch, fastcam.learner as fl
    fl.url_reachable = fl._cached = lambda *a, **k: False             # offline, as the README's session here: no weights to be had
    class Split(Callback):
        order = -100
        def before_fit(self): self.t = dict(load_train=0., step_train=0., load_valid=0., step_valid=0.)
        def before_train(self): self.last = time.perf_counter()
        def before_validate(self): self.last = time.perf_counter()
        def _tick(self, k):
            now = time.perf_counter(); self.t[f"{k}_{'train' if self.training else 'valid'}"] += now - self.last; self.last = now
        def before_batch(self): self._tick('load')
        def after_batch(self): self._tick('step')
    _, dkw, lkw, fkw = VARIANTS[variant]
    set_seed(seed)
    t1 = time.perf_counter()
    dls = pets_dls(**dkw)
    bf16 = False if os.environ.get('ONEDNN_MAX_CPU_ISA') == 'AVX2' else None
    learn = cam_learner(dls, resnet34, metrics=error_rate, bf16=bf16, cbs=[Split()], **lkw)
    with learn.no_bar(), learn.no_logging(): learn.fine_tune(1, **fkw)
    learn.show_cam()
    t2 = time.perf_counter()
    print(json.dumps(dict(total=t2 - t0, imports=t1 - t0, error=float(learn.recorder.values[-1][-1]), bf16=learn.trains_bf16,
                          epochs=len(learn.recorder.values), map=list(learn.top_loss_cam.result.maps.shape[-2:]), **learn.split.t)))

def session(variant, seed, avx2):
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '2'))
    if avx2: env.update(ATEN_CPU_CAPABILITY='avx2', ONEDNN_MAX_CPU_ISA='AVX2')
    out = subprocess.run([sys.executable, __file__, '--child', variant, str(seed)], env=env, capture_output=True, text=True)
    if out.returncode: raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])

def sessions(variants, seeds, avx2):
    name, flags = cpu()
    print(f"{name}, flags {' '.join(flags)}, {os.environ.get('OMP_NUM_THREADS', '2')} threads" +
          (': run as AVX2-only (ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2, float32)' if avx2 else ''))
    base = None
    for v in variants:
        rs = [session(v, s, avx2) for s in seeds]
        t = statistics.median(r['total'] for r in rs)
        base = base or t
        r, errs = rs[0], ' '.join(format(x['error'], '.2%') for x in rs)
        print(f"{v:8} {t:6.1f} s ({t / base:.2f}x {variants[0]}), error {errs} over seeds "
              f"{' '.join(map(str, seeds))}; {r['epochs']} epochs, {'bfloat16' if r['bf16'] else 'float32'}, map {r['map'][0]}x{r['map'][1]}; "
              f"seed {seeds[0]}: imports {r['imports']:.1f} s, train {r['step_train']:.1f} + loading {r['load_train']:.1f} s, "
              f"validation {r['step_valid']:.1f} + loading {r['load_valid']:.1f} s  [{VARIANTS[v][0]}]", flush=True)

def steps(reps, n):
    "The old measurement: `n` training steps (after 2 warm-up ones) in float32 and in bfloat16 autocast, median of `reps`"
    import torch
    from fastai.callback.core import Callback, CancelFitException
    from fastcam.all import pets_dls, cam_learner, resnet34, set_seed
    from fastcam.learner import _native_bf16
    class Steps(Callback):
        def before_fit(self): self.i, self.t0 = 0, None
        def before_batch(self):
            if self.i == 2: self.t0 = time.perf_counter()
        def after_batch(self):
            self.i += 1
            if self.i == 2 + n: self.seconds = time.perf_counter() - self.t0; raise CancelFitException
    dls, times = pets_dls(), {False: [], True: []}
    for _ in range(reps):
        for bf16 in (False, True):
            set_seed(0)
            learn = cam_learner(dls, resnet34, pretrained=False, bf16=bf16, cbs=[])
            with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=(s := Steps()))
            times[bf16].append(s.seconds / n)
    f32, b16 = statistics.median(times[False]), statistics.median(times[True])
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, native bfloat16 on this CPU: {_native_bf16()}')
    print(f'resnet34 body to layer3, 96 px, batch {dls.bs}, {n} training steps, median of {reps}: float32 {f32:.3f} s/step, '
          f'bfloat16 {b16:.3f} s/step ({f32 / b16:.2f}x faster); an epoch is {len(dls.train)} steps')

if __name__ == '__main__':
    if sys.argv[1:2] == ['--child']: child(sys.argv[2], int(sys.argv[3])); sys.exit()
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--variant', nargs='+', default=['chapter'], choices=list(VARIANTS))
    p.add_argument('--seeds', nargs='+', type=int, default=[0])
    p.add_argument('--avx2', action='store_true', help='run as a CPU without AVX-512 or bfloat16 would (an approximation)')
    p.add_argument('--steps', action='store_true', help='time training steps in float32 and bfloat16 instead')
    p.add_argument('--reps', type=int, default=3)
    a = p.parse_args()
    if a.steps: steps(a.reps, 10)
    else: sessions(a.variant, a.seeds, a.avx2)
