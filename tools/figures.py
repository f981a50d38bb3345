"""The README's figures, in nbs/images/: `make figures` (about two minutes on two cores).

1. demo_top_losses.png: the demo's top-loss grid (`fastcam demo`, its defaults).
2. methods.png: one map per method on the bundled pets, all at the layer the head pools, of each image's actual
   class, under the image with the animal's box.
3. align.png: what the chapter's `extent` gets wrong: where a map cell looks (the centroid of its input gradient, on
   an untrained body and noise, where nothing learned pulls it), and the cell as the chapter draws it and as
   `show_map` draws it; then a trained CAM both ways.
"""
import shutil, sys, tempfile
from pathlib import Path
import matplotlib; matplotlib.use('Agg')
import matplotlib.pyplot as plt, torch
from torch import nn
from torchvision.models import resnet18
from PIL import Image
from matplotlib.patches import Rectangle
from fastai.learner import load_learner
from fastcam.demo import run_demo, LABELS
from fastcam.cam import class_maps, get_layer
from fastcam.data import pets_boxes, pets_dls
from fastcam.vis import show_map

root = Path(__file__).resolve().parent.parent
dest = root/'nbs'/'images'
DPI = 80
NAMES = dict(cam='CAM', gradcam='Grad-CAM', **{'gradcam++': 'Grad-CAM++'}, xgradcam='XGrad-CAM', layercam='LayerCAM', scorecam='Score-CAM')

def box(ax, b, **kw):
    "Draw the box `b` (x0, y0, x1, y1 in pixels) on `ax`"
    x0, y0, x1, y1 = b.tolist()
    ax.add_patch(Rectangle((x0 - .5, y0 - .5), x1 - x0, y1 - y0, fill=False, **{'ec': 'lime', 'lw': 1.5, **kw}))

def methods_figure(learn, fn, rows=4):
    "One row per validation image (cats and dogs), one column per method, each map of the actual class at the pooled layer"
    dl = learn.dls.valid
    x, y = (t.as_subclass(torch.Tensor) for t in dl.one_batch())
    pick = torch.cat([(y == 1).nonzero()[:rows // 2, 0], (y == 0).nonzero()[:rows - rows // 2, 0]])
    x, y, b = x[pick], y[pick], pets_boxes(dl)[pick]                     # the valid set is not shuffled: boxes in batch order
    imgs = learn.dls.decode((x,))[0]
    maps = {m: class_maps(learn.model, x, y, m, None if m == 'cam' else -1).cpu() for m in NAMES}
    fig, axs = plt.subplots(rows, len(NAMES) + 1, figsize=(1.6 * (len(NAMES) + 1), 1.7 * rows))
    for i in range(rows):
        axs[i, 0].imshow(imgs[i].permute(1, 2, 0)); axs[i, 0].set_axis_off(); box(axs[i, 0], b[i])
        axs[i, 0].set_title(LABELS[bool(y[i])], fontsize=9)
        for j, m in enumerate(NAMES, 1):
            show_map(maps[m][i], imgs[i], ax=axs[i, j], relu=m != 'cam'); box(axs[i, j], b[i], lw=1)
            if i == 0: axs[i, j].set_title(NAMES[m], fontsize=9)
    layer = get_layer(learn.model, -1, x)
    fig.suptitle(f"Each method's map of the actual class at the layer the head pools ({x.shape[-1]} px, {tuple(maps['cam'].shape[1:])} maps)", fontsize=10)
    fig.tight_layout(); fig.savefig(fn, dpi=DPI); plt.close(fig)

def align_figure(learn, fn):
    "Where the middle cell of a 6×6 map looks (untrained body, noise: the centroid of its input gradient), where the chapter's `extent` and `show_map` draw it; then a trained CAM both ways"
    dl = learn.dls.valid
    x, y = (t.as_subclass(torch.Tensor) for t in dl.one_batch())
    i = int((y == 1).nonzero()[0, 0])
    img, b = learn.dls.decode((x[i:i+1],))[0][0], pets_boxes(dl)[i]
    torch.manual_seed(0)
    body = nn.Sequential(*list(resnet18(weights=None).children())[:-3]).eval()      # the same body, untrained: no learned bias in where it looks
    noise = torch.randn(1, 3, *x.shape[-2:]).requires_grad_()
    f = body(noise); H, W = x.shape[-2:]; hh, ww = f.shape[-2:]
    ci, cj = hh // 2, ww // 2                                                      # the middle cell: the image's edges don't cut its field
    f[0, :, ci, cj].sum().backward()
    g = noise.grad.abs().sum((0, 1))
    gy, gx = ((g.sum(1) * torch.arange(H)).sum() / g.sum()).item(), ((g.sum(0) * torch.arange(W)).sum() / g.sum()).item()
    s = H // hh
    assert abs(gy - s * ci) < 2 and abs(gx - s * cj) < 2, (gy, gx)              # the receptive-field centre: pixel (s·i, s·j)
    one = torch.zeros(hh, ww); one[ci, cj] = 1
    cam = class_maps(learn.model, x[i:i+1], y[i:i+1], 'cam')[0].cpu()
    fig, axs = plt.subplots(1, 5, figsize=(13, 3.4))
    axs[0].imshow(g, cmap='magma'); axs[0].set_axis_off(); axs[0].set_title(f'where cell {(ci, cj)} looks:\nits input gradient', fontsize=9)
    show_map(one, img, ax=axs[1], align=False); axs[1].set_title(f"that cell, the chapter's extent:\n{s // 2} px down and right of +", fontsize=9)
    show_map(one, img, ax=axs[2]); axs[2].set_title('that cell, show_map:\non the +', fontsize=9)
    for ax in axs[:3]: ax.plot([gx], [gy], '+', c='cyan', ms=14, mew=2)
    for ax, al in zip(axs[3:], (False, True)):
        show_map(cam, img, ax=ax, align=al); box(ax, b)
        ax.set_title(f"a cat's {hh}×{ww} CAM, " + ("the chapter's extent" if not al else 'show_map') + '\n(green: the animal)', fontsize=9)
    fig.suptitle(f'+ : the centroid of the input gradient of cell {(ci, cj)} of a {hh}×{ww} map (an untrained resnet18 body, noise, {H} px): '
                 f'pixel ({gy:.0f}, {gx:.0f}) = {s}·{(ci, cj)}', fontsize=10)
    fig.tight_layout(); fig.savefig(fn, dpi=DPI); plt.close(fig)

def main(out=None):
    "Run the demo into `out` (default: a temporary folder), then draw the figures with its learner"
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        out = Path(out or d)
        if not (out/'model.pkl').exists(): run_demo(out=out)
        shutil.copy(out/'top_losses.png', dest/'demo_top_losses.png')
        learn = load_learner(out/'model.pkl')
    learn.dls = pets_dls(n=2000, size=96, bs=32)                                  # the demo's data (drawn once, then read)
    methods_figure(learn, dest/'methods.png')
    align_figure(learn, dest/'align.png')
    for f in sorted(dest.glob('*.png')):                                          # 256 colours: a third of the size, the same to the eye
        with Image.open(f) as im: im = im.convert('RGB').quantize(256, method=Image.Quantize.FASTOCTREE)
        im.save(f, optimize=True)
        print(f'{f.relative_to(root)}: {f.stat().st_size / 1e3:.0f} kB')

if __name__ == '__main__': main(*sys.argv[1:])   # an argument: the demo's folder, run once and kept
