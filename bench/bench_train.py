"""What bfloat16 on the CPU buys the README's session: training steps of `cam_learner(pets_dls(), resnet34)` from scratch.

Time: `--steps` training batches (after 2 warm-up ones) in float32 and in bfloat16 autocast (`cam_learner(bf16=True)`),
alternating, median of `--reps`; the ratio float32 / bfloat16. The CPU's native bfloat16 support is printed: without it
autocast is emulated and slower. Run `python bench/bench_train.py`."""
import argparse, statistics, time, warnings
warnings.filterwarnings('ignore')
import torch
from fastai.callback.core import Callback, CancelFitException

class Steps(Callback):
    "Time `n` training batches after `warm` warm-up ones, then stop the fit"
    def __init__(self, n, warm=2): self.n, self.warm = n, warm
    def before_fit(self): self.i, self.t0 = 0, None
    def before_batch(self):
        if self.i == self.warm: self.t0 = time.perf_counter()
    def after_batch(self):
        self.i += 1
        if self.i == self.warm + self.n: self.seconds = time.perf_counter() - self.t0; raise CancelFitException

def main(reps, steps):
    from fastcam.all import pets_dls, cam_learner, resnet34, set_seed
    from fastcam.learner import _native_bf16
    dls = pets_dls()
    times = {False: [], True: []}
    for _ in range(reps):
        for bf16 in (False, True):
            set_seed(0)
            learn = cam_learner(dls, resnet34, pretrained=False, bf16=bf16, cbs=[])
            with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=(s := Steps(steps)))
            times[bf16].append(s.seconds / steps)
    f32, b16 = statistics.median(times[False]), statistics.median(times[True])
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, native bfloat16 on this CPU: {_native_bf16()}')
    print(f'resnet34 body to layer3, 96 px, batch {dls.bs}, {steps} training steps, median of {reps}: float32 {f32:.3f} s/step, '
          f'bfloat16 {b16:.3f} s/step ({f32 / b16:.2f}x faster); an epoch is {len(dls.train)} steps')

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--reps', type=int, default=3); p.add_argument('--steps', type=int, default=10)
    a = p.parse_args()
    main(a.reps, a.steps)
