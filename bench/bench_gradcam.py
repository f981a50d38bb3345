"""Grad-CAM speed and memory on resnet34 at 224 px, measured in one run: fastcam's `gradcam_maps` against
the lower bound (one forward + the gradient of the summed target scores w.r.t. the layer output, nothing else),
a plain no-grad forward, and the peers (pytorch-grad-cam, torchcam, captum, each if installed); then the maps of two
layers fused (one pass for both, layer by layer, and pytorch-grad-cam's list of target layers).

Prints ratios to the lower bound (time) and to the no-grad forward (peak memory). Run: `make bench`,
or `python bench/bench_gradcam.py --quick` for batch 8 only. Memory is each method's peak RSS over one call in a
fresh process, minus the RSS before the call, and what the call left allocated ('held')."""
import argparse, gc, json, re, statistics, subprocess, sys, time, warnings
warnings.filterwarnings('ignore')
import torch
from torchvision.models import resnet34

def _status(key): return int(re.search(rf'{key}:\s+(\d+)', open('/proc/self/status').read()).group(1)) / 1024
def rss_mb(): return _status('VmRSS')
def peak_mb(): return _status('VmHWM')
def reset_peak(): open('/proc/self/clear_refs', 'w').write('5')   # Linux: the peak RSS starts again from now

def setup(bs, seed=0):
    torch.manual_seed(seed)
    model = resnet34(weights=None).eval()
    return model, torch.randn(bs, 3, 224, 224), torch.randint(0, 1000, (bs,))

def lower_bound(model, x, target, layer):
    "Forward with a leaf at `layer`'s output and frozen parameters, then `autograd.grad` to that leaf: the least work"
    st = {}
    def hook(m, i, o): st['a'] = o.detach().requires_grad_(); return st['a']
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters(): p.requires_grad_(False)
    h = layer.register_forward_hook(hook)
    try:
        out = model(x)
        g, = torch.autograd.grad(out.gather(1, target[:, None]).sum(), st['a'])
        return (g.mean((2, 3))[:, :, None, None] * st['a'].detach()).sum(1)
    finally:
        h.remove()
        for p, f in zip(model.parameters(), flags): p.requires_grad_(f)

def forward_nograd(model, x, target, layer):
    with torch.no_grad(): return model(x)

def fastcam(model, x, target, layer):
    from fastcam.cam import gradcam_maps
    return gradcam_maps(model, x, target=target, layer=layer)

def pytorch_grad_cam(model, x, target, layer):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    with GradCAM(model=model, target_layers=[layer]) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in target])

def torchcam(model, x, target, layer):
    from torchcam.methods import GradCAM
    with GradCAM(model, target_layer=layer) as ext:
        out = model(x)
        return ext(target.tolist(), out)

def captum(model, x, target, layer):
    from captum.attr import LayerGradCam
    return LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=False)

METHODS = dict(forward_nograd=forward_nograd, lower_bound=lower_bound, fastcam=fastcam,
               pytorch_grad_cam=pytorch_grad_cam, torchcam=torchcam, captum=captum)

def available(name):
    mod = dict(pytorch_grad_cam='pytorch_grad_cam', torchcam='torchcam', captum='captum').get(name)
    if mod is None: return True
    try: __import__(mod); return True
    except ImportError: return False

def layer_of(model, name): return model.get_submodule(name)

def time_all(fs, reps):
    "Median time of each of `fs`, measured round-robin so that drift and warm-up hit them all alike"
    for f in fs.values(): f()              # warm-up
    ts = {k: [] for k in fs}
    for _ in range(reps):
        for k, f in fs.items():
            t = time.perf_counter(); f(); ts[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in ts.items()}

def memory_child(method, bs, layer):
    "In a fresh process: peak and held RSS (MB) of one call"
    model, x, target = setup(bs)
    lyr = layer_of(model, layer)
    METHODS[method](model, x[:1], target[:1], lyr)   # import the library and warm the allocator on one image
    gc.collect(); reset_peak(); before = rss_mb()
    res = METHODS[method](model, x, target, lyr)
    peak = peak_mb() - before
    del res; gc.collect()
    print(json.dumps(dict(peak=peak, held=rss_mb() - before)))

def memory(method, bs, layer):
    out = subprocess.run([sys.executable, __file__, '--child', method, str(bs), layer], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])

def fused(model, x, target, methods)->dict:
    "The maps of layer4 and layer3, fused: fastcam's list of layers, fastcam layer by layer, pytorch-grad-cam's list of target layers"
    from fastcam.cam import class_maps, gradcam_maps, fuse_maps
    both = [model.layer4, model.layer3]
    fs = dict(lower_bound=lambda: lower_bound(model, x, target, model.layer3),
              fastcam=lambda: class_maps(model, x, target, 'gradcam', both),
              fastcam_layer_by_layer=lambda: fuse_maps([gradcam_maps(model, x, target, l) for l in both]))
    if 'pytorch_grad_cam' in methods:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        def pgc():
            with GradCAM(model=model, target_layers=both) as cam: return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in target])
        fs['pytorch_grad_cam'] = pgc
    return fs

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='batch 8 only, fewer repetitions')
    p.add_argument('--child', nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child: return memory_child(a.child[0], int(a.child[1]), a.child[2])
    torch.set_num_threads(torch.get_num_threads())
    methods = [m for m in METHODS if available(m)]
    sizes, reps = ([8], 3) if a.quick else ([1, 8, 32], 7)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, resnet34 224 px; time: median of {reps}, ratio to lower_bound')
    for layer in ('layer4', 'layer3'):
        for bs in sizes:
            model, x, target = setup(bs)
            lyr = layer_of(model, layer)
            ts = time_all({m: (lambda m=m: METHODS[m](model, x, target, lyr)) for m in methods}, reps)
            lb = ts['lower_bound']
            print(f'{layer} bs={bs:>2}  ' + '  '.join(f'{m} {t*1000:.0f} ms ({t/lb:.2f}x)' for m, t in ts.items()))
    bs = 8
    model, x, target = setup(bs)
    print(f'\ntwo layers fused (layer4 + layer3), bs={bs}: time, ratio to the lower bound at layer3 (its backward passes layer4)')
    fs = fused(model, x, target, methods)
    ts = time_all(fs, reps)
    print('layer4+layer3  ' + '  '.join(f"{m} {t*1000:.0f} ms ({t/ts['lower_bound']:.2f}x)" for m, t in ts.items()))
    bs = sizes[-1]
    print(f'\npeak memory over one call, bs={bs} (MB; ratio to forward_nograd), and what the call left allocated')
    for layer in ('layer4', 'layer3'):
        mem = {m: memory(m, bs, layer) for m in methods}
        base = mem['forward_nograd']['peak']
        print(f'{layer} bs={bs:>2}  ' + '  '.join(f"{m} {v['peak']:.0f} ({v['peak']/base:.2f}x, held {v['held']:.0f})" for m, v in mem.items()))

if __name__ == '__main__': main()
