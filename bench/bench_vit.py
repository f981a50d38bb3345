"""Grad-CAM on a vision transformer: ViT-S/16 (timm's `vit_small_patch16_224`, random weights) at 224 px, batch 32,
at the last block's first norm (the default layer; the peers' recommendation). fastcam's `gradcam_maps` finds the
token grid itself; pytorch-grad-cam is given the `reshape_transform` its tutorial writes by hand. The lower bound is
one forward pass with a leaf at the layer's output and the gradient of the summed target scores to that leaf.

Prints time (median of `--reps`, ratio to the lower bound) and peak memory over one call in a fresh process (ratio to
a no-grad forward), in one run. Run: `python bench/bench_vit.py` (`make bench` runs it)."""
import argparse, gc, json, subprocess, sys, warnings
warnings.filterwarnings('ignore')
import torch, timm
from bench_gradcam import time_all, rss_mb, peak_mb, reset_peak

BS, LAYER, PREFIX, GRID = 32, 'blocks.11.norm1', 1, 14

def setup(bs=BS, seed=0):
    torch.manual_seed(seed)
    model = timm.create_model('vit_small_patch16_224', pretrained=False).eval()
    return model, torch.randn(bs, 3, 224, 224), torch.randint(0, 1000, (bs,))

def to_grid(t): return t[:, PREFIX:].reshape(len(t), GRID, GRID, t.shape[-1]).permute(0, 3, 1, 2)

def forward_nograd(model, x, target):
    with torch.no_grad(): return model(x)

def lower_bound(model, x, target):
    st = {}
    def hook(m, i, o): st['a'] = o.detach().requires_grad_(); return st['a']
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters(): p.requires_grad_(False)
    h = model.get_submodule(LAYER).register_forward_hook(hook)
    try:
        out = model(x)
        g, = torch.autograd.grad(out.gather(1, target[:, None]).sum(), st['a'])
        a, g = to_grid(st['a'].detach()), to_grid(g)
        return (g.mean((2, 3))[:, :, None, None] * a).sum(1)
    finally:
        h.remove()
        for p, f in zip(model.parameters(), flags): p.requires_grad_(f)

def fastcam(model, x, target):
    from fastcam.cam import gradcam_maps
    return gradcam_maps(model, x, target=target)

def pytorch_grad_cam(model, x, target):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    with GradCAM(model=model, target_layers=[model.get_submodule(LAYER)], reshape_transform=to_grid) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in target])

METHODS = dict(forward_nograd=forward_nograd, lower_bound=lower_bound, fastcam=fastcam, pytorch_grad_cam=pytorch_grad_cam)

def memory_child(method):
    model, x, target = setup()
    METHODS[method](model, x[:1], target[:1])            # imports and a warm allocator
    gc.collect(); reset_peak(); before = rss_mb()
    res = METHODS[method](model, x, target)
    peak = peak_mb() - before
    del res; gc.collect()
    print(json.dumps(dict(peak=peak, held=rss_mb() - before)))

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--reps', type=int, default=3)
    p.add_argument('--child', help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child: return memory_child(a.child)
    model, x, target = setup()
    from fastcam.cam import get_layer
    assert get_layer(model, x=x[:1]) is model.get_submodule(LAYER)   # the default layer is the one the others are given
    ts = time_all({m: (lambda m=m: METHODS[m](model, x, target)) for m in METHODS}, a.reps)
    lb = ts['lower_bound']
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, ViT-S/16 224 px, batch {BS}, layer {LAYER}; '
          f'time: median of {a.reps}, ratio to lower_bound')
    print('  '.join(f'{m} {t:.2f} s ({t/lb:.2f}x)' for m, t in ts.items()))
    mem = {m: json.loads(subprocess.run([sys.executable, __file__, '--child', m], capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
           for m in METHODS}
    base = mem['forward_nograd']['peak']
    print(f'peak memory over one call (MB; ratio to forward_nograd), and what the call left allocated')
    print('  '.join(f"{m} {v['peak']:.0f} ({v['peak']/base:.2f}x, held {v['held']:.0f})" for m, v in mem.items()))

if __name__ == '__main__': main()
