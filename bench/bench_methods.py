"""Every map-making method, measured in one run: time and peak memory next to pytorch-grad-cam's and torchcam's
equivalents on resnet34 at 224 px, batch 32 (Score-CAM and AblationCAM: batch 2, as they take one forward pass per
channel and image: 16,384 at batch 32); then the localisation table of every method on the bundled pets, for a model trained here.

Time: median of `--reps` calls, round-robin (ratio to fastcam's). Memory: the peak RSS of one call in a fresh
process, minus the RSS before it. Run: `make bench`, or `python bench/bench_methods.py --quick` (batch 8, no table)."""
import argparse, io, json, subprocess, sys, tempfile, time, warnings
from contextlib import redirect_stderr, redirect_stdout
warnings.filterwarnings('ignore')
import torch
from bench_gradcam import setup, time_all, rss_mb, peak_mb, reset_peak
from fastcam.learner import _native_bf16

PGC = {'gradcam': 'GradCAM', 'gradcam++': 'GradCAMPlusPlus', 'xgradcam': 'XGradCAM', 'hirescam': 'HiResCAM',
       'layercam': 'LayerCAM', 'scorecam': 'ScoreCAM', 'gradcamelementwise': 'GradCAMElementWise', 'eigencam': 'EigenCAM',
       'eigengradcam': 'EigenGradCAM', 'ablationcam': 'AblationCAM', 'shapleycam': 'ShapleyCAM', 'kpcacam': 'KPCA_CAM',
       'fullgrad': 'FullGrad', 'randomcam': 'RandomCAM', 'finercam': 'FinerCAM'}
ONE_PER_CHANNEL = ('scorecam', 'ablationcam')   # a forward pass per channel and image: measured at batch 2, one call each
TORCHCAM = {'gradcam': 'GradCAM', 'gradcam++': 'GradCAMpp', 'xgradcam': 'XGradCAM', 'layercam': 'LayerCAM', 'scorecam': 'ScoreCAM',
            'smoothgradcampp': 'SmoothGradCAMpp', 'finercam': 'FinerCAM'}

def fastcam(method, model, x, target):
    from fastcam.cam import gradcam_maps, get_method
    bf16, name = method.endswith('+bf16'), method.removesuffix('+bf16')  # 'scorecam+bf16': its opt-in bfloat16 passes
    layer = None if get_method(name).whole else 'layer4'                  # FullGrad: every bias layer
    return gradcam_maps(model, x, target=target, layer=layer, method=name, bf16=bf16)

def pytorch_grad_cam(method, model, x, target):
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    with getattr(pgc, PGC[method])(model=model, target_layers=[model.layer4]) as cam, redirect_stderr(io.StringIO()), redirect_stdout(io.StringIO()):
        if method == 'scorecam': cam.batch_size = 32
        if method == 'finercam': return cam(input_tensor=x)                     # its rivals are chosen from the predicted class
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in target])

def torchcam(method, model, x, target):
    import torchcam.methods as tcm
    kw = dict(batch_size=32) if method == 'scorecam' else {}
    with getattr(tcm, TORCHCAM[method])(model, target_layer='layer4', **kw) as ext:
        out = model(x)
        return ext(target.tolist(), out) if method != 'finercam' else ext(out.argmax(1).tolist(), out)

LIBS = dict(fastcam=fastcam, pytorch_grad_cam=pytorch_grad_cam, torchcam=torchcam)
def has(lib, method): return lib == 'fastcam' or method in dict(pytorch_grad_cam=PGC, torchcam=TORCHCAM)[lib]

def child(lib, method, bs):
    "In a fresh process: the peak and the time of one call"
    model, x, target = setup(bs)
    LIBS[lib](method, model, x[:1], target[:1]) if method not in ONE_PER_CHANNEL else None   # import and warm up on one image
    reset_peak(); before = rss_mb(); t = time.perf_counter()
    LIBS[lib](method, model, x, target)
    print(json.dumps(dict(peak=peak_mb() - before, seconds=time.perf_counter() - t)))

def measure(lib, method, bs):
    out = subprocess.run([sys.executable, __file__, '--child', lib, method, str(bs)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])

def speed_and_memory(bs, reps, only=None):
    from fastcam.cam import METHODS
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads; resnet34 224 px, layer4, batch {bs}; '
          f'time: median of {reps} (ratio to fastcam), peak memory of one call in a fresh process (MB)')
    model, x, target = setup(bs)
    for method in [m for m in METHODS if m not in ('cam', *ONE_PER_CHANNEL) and (only is None or m in only)]:
        libs = [l for l in LIBS if has(l, method)]
        ts = time_all({l: (lambda l=l: LIBS[l](method, model, x, target)) for l in libs}, reps)
        mem = {l: measure(l, method, bs)['peak'] for l in libs}
        print(f'{method:10s} ' + '  '.join(f"{l} {ts[l]:.2f} s ({ts[l] / ts['fastcam']:.2f}x), {mem[l]:.0f} MB" for l in libs))
    sb = 2
    for method in [m for m in ONE_PER_CHANNEL if only is None or m in only]:
        libs = [l for l in LIBS if has(l, method)]
        res = {l: measure(l, method, sb) for l in libs}
        print(f'{method:10s} ' + '  '.join(f"{l} {r['seconds']:.1f} s ({r['seconds'] / res['fastcam']['seconds']:.2f}x), {r['peak']:.0f} MB"
                                           for l, r in res.items()) + f'   (batch {sb}: {sb * 512} forward passes, one call each)')
        if method == 'scorecam':
            r = measure('fastcam', 'scorecam+bf16', sb)
            print(f"{'':10s} fastcam bf16=True {r['seconds']:.1f} s ({r['seconds'] / res['fastcam']['seconds']:.2f}x), {r['peak']:.0f} MB"
                  f"   (bfloat16 autocast, opt-in; native bfloat16 on this CPU: {_native_bf16()})")
    if only is None or 'scorecam' in only: print(f"           pytorch-grad-cam's Score-CAM builds all masked inputs at once: {32 * 512 * 3 * 224 * 224 * 4 / 2**30:.1f} GB at batch 32")

def localisation(n, epochs, only=None):
    from fastcam.all import pets_dls, cam_learner, resnet18, set_seed, error_rate
    from fastcam.metrics import localisation_report
    set_seed(0, reproducible=True)
    dls = pets_dls(bs=32, num_workers=0)
    learn = cam_learner(dls, resnet18, pretrained=False, metrics=error_rate, path=tempfile.mkdtemp(), cbs=[], bf16=False)   # float32, as the table the README quotes
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, 3e-3)
    with learn.no_bar(): err = learn.validate()[1]
    print(f'\nlocalisation on the bundled pets (96 px): resnet18 body to layer3, {epochs} epochs from scratch, error {err:.4f}; '
          f'maps of the actual class, first {n} validation images')
    import pandas as pd
    with pd.option_context('display.float_format', '{:.3f}'.format, 'display.width', 160):
        for layer in (-1, -2):
            t = time.perf_counter()
            rep = localisation_report(learn, methods=only, layer=layer, n=n)
            print(f'\nlayer={layer} ({time.perf_counter() - t:.0f} s)\n{rep}')

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='batch 8, one repetition, no localisation table')
    p.add_argument('--reps', type=int, default=3)
    p.add_argument('--n', type=int, default=200, help='validation images in the localisation table')
    p.add_argument('--table', action='store_true', help='only the localisation table')
    p.add_argument('--speed', action='store_true', help='only the speed and memory table')
    p.add_argument('--bs', type=int, default=32, help='the batch size of the speed and memory table')
    p.add_argument('--methods', help="only these methods, joined by commas (e.g. 'cam,gradcam,fullgrad')")
    p.add_argument('--child', nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child: return child(a.child[0], a.child[1], int(a.child[2]))
    only = a.methods.split(',') if a.methods else None
    if a.table: return localisation(a.n, 4, only)
    speed_and_memory(8 if a.quick else a.bs, 1 if a.quick else a.reps, only)
    if not (a.quick or a.speed): localisation(a.n, 4, only)

if __name__ == '__main__': main()
