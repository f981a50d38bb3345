"""Exact values, computed by hand, for the small functions every map passes through: hooks, upsampling and overlays,
the pointing game, deletion curves and their area, average drop, the sanity check's order, multi-label titles,
Score-CAM on a toy whose score is linear in its input. The notebooks test them
where they are defined; these catch the same bugs from the pytest suite alone (`make mutants --pytest-only`)."""
import matplotlib, numpy as np, torch
from torch import nn
from fastcam.hooks import Hook, HookBwd, n_hooks
from fastcam.vis import upsample_maps, overlay, overlays, normalize_maps
from fastcam.metrics import pointing_game, deletion_curves, auc, confidence_change, _top_down
from fastcam.callback import TopLosses
from fastcam.cam import gradcam_maps

def colour(v): return (np.array(matplotlib.colormaps['magma'](v)[:3]) * 255).round().astype(np.uint8)

def test_hookbwd_keeps_its_own_copy():
    lin = nn.Linear(3, 2)
    x = torch.randn(4, 3)
    with HookBwd(lin) as h:
        y = lin(x)
        y.register_hook(lambda g: g.mul_(0))                          # a later hook that edits the gradient in place
        y.backward(torch.ones(4, 2))
    assert torch.equal(h.stored, torch.ones(4, 2))

def test_n_hooks_counts_backward_pre_hooks():
    m = nn.Sequential(nn.Linear(2, 2))
    h = m[0].register_full_backward_pre_hook(lambda mod, g: None)
    assert n_hooks(m) == 1
    h.remove(); assert n_hooks(m) == 0

def test_fastai_hook_detaches_by_default():
    lin = nn.Linear(3, 2)
    with Hook(lin, lambda m, i, o: o) as h: lin(torch.randn(1, 3))
    assert not h.stored.requires_grad and h.stored.grad_fn is None

def test_upsample_puts_cell_i_on_pixel_s_i_unturned():
    maps = torch.arange(6.).view(1, 2, 3)                             # 2 rows, 3 columns: not symmetric, not square
    up = upsample_maps(maps, (4, 6))
    assert up.shape == (1, 4, 6)
    torch.testing.assert_close(up[:, ::2, ::2], maps)                 # cell (i, j) on pixel (2i, 2j)
    torch.testing.assert_close(up[0, 0, 1], torch.tensor(.5))         # halfway between cells (0, 0) and (0, 1)

def test_overlay_colours_negative_evidence_and_white():
    neg, img = torch.tensor([[-3., 1.], [2., 3.]]), torch.rand(3, 64, 64)
    a = np.asarray(overlay(neg, img, alpha=1))
    assert (a[0, 32] == colour(2/3)).all() and (a[0, 0] == colour(0.)).all()     # scaled from -3, not clipped at 0
    assert (np.asarray(overlay(neg, img, alpha=1, relu=True))[0, 32] == colour(1/3)).all()
    assert (np.asarray(overlay(neg, torch.ones(3, 4, 4), alpha=0)) == 255).all()  # a [0, 1] image up to exactly 1 is white

def test_overlays_are_matplotlibs_colours_blended_by_hand():
    "A batch of overlays: each pixel the image and matplotlib's colour of the scaled map blended in float64, exactly; each the same as alone"
    torch.manual_seed(0)
    maps, imgs = torch.randn(6, 3, 4), torch.rand(6, 3, 30, 40)
    for relu, alpha in ((False, .6), (True, .35)):
        batch = overlays(maps, imgs, alpha=alpha, relu=relu)
        up = normalize_maps(upsample_maps(maps.relu() if relu else maps, (30, 40)), relu=False).numpy()
        im = (imgs.permute(0, 2, 3, 1).numpy() * 255).astype(np.float64)
        by_hand = (1 - alpha) * im + alpha * matplotlib.colormaps['magma'](up)[..., :3] * 255
        assert batch.dtype == np.uint8 and (batch == by_hand.round().clip(0, 255).astype(np.uint8)).all()
        assert all((np.asarray(overlay(m, i, alpha=alpha, relu=relu)) == b).all() for m, i, b in zip(maps, imgs, batch))
    nan = torch.tensor([[[float('nan'), 1.], [0., 2.]]])                          # a NaN cell: matplotlib's colour for it, not an error
    assert (overlays(nan, torch.zeros(1, 3, 2, 2), alpha=1, align=False)[0, 0, 0] == 0).all()

def test_pointing_game_by_hand():
    m = torch.tensor([[[0., 1.], [0., 0.]]]).repeat(3, 1, 1)          # the maximum at row 0, column 1: pixel (y 0, x 2) of 4
    boxes = torch.tensor([[0, 0, 2, 4], [0, 0, 3, 4], [2, 0, 3, 1]])    # x = 2 on the exclusive edge; inside; just that pixel
    assert pointing_game(m, boxes, 4).tolist() == [False, True, True]

def test_deletion_order_first_point_and_area():
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False))
    w = torch.tensor([3., -1., 2., .5])
    with torch.no_grad(): lin[1].weight.copy_(torch.stack([w, torch.zeros(4)]))
    x = torch.ones(1, 1, 2, 2)
    curve = deletion_curves(lin, x, w.view(1, 2, 2), target=0, steps=4)[0]
    kept = [w[w.argsort(descending=True)[k:]].sum() for k in range(5)]  # the logit left after deleting the k most salient
    torch.testing.assert_close(curve, torch.sigmoid(torch.stack(kept)))  # two classes, logit 0 for the other
    torch.testing.assert_close(auc(torch.tensor([[0., 1.], [1., 1.]])), torch.tensor([.5, 1.]))
    torch.testing.assert_close(auc(torch.tensor([[1., 0., 0.]])), torch.tensor([.25]))

def test_confidence_rise_is_no_drop():
    up = nn.Sequential(nn.Flatten(), nn.Linear(48, 2, bias=False))
    with torch.no_grad(): up[1].weight.copy_(torch.stack([-torch.ones(48) / 48, torch.zeros(48)]))   # class 0 rises as the image darkens
    drop, rise = confidence_change(up, torch.rand(1, 3, 4, 4) + .5, torch.rand(1, 2, 2), target=0)
    assert drop.item() == 0. and rise.item()

def test_sanity_check_goes_from_the_output_down():
    net = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 3)),
                        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 2)))
    order = [m for _, m in _top_down(net, torch.randn(1, 3, 16, 16))]
    assert order[0] is net[1][2] and order[-1] is net[0][0]

def test_multi_label_titles_say_how_each_label_stands():
    "Labels a (actual, predicted), b (predicted only), c (actual only): right, wrong, missed"
    t = TopLosses(idxs=torch.arange(1), items=['x'], actual=torch.tensor([[True, False, True]]), predicted=torch.tensor([[True, True, False]]),
                  probs=torch.tensor([[.9, .7, .2]]), losses=torch.ones(1), maps=torch.zeros(3, 2, 2), imgs=torch.zeros(1, 3, 8, 8, dtype=torch.uint8),
                  vocab=['a', 'b', 'c'], map_item=torch.zeros(3, dtype=torch.long), map_class=torch.arange(3))
    assert t.titles() == ['Image 0: a 0.90 (right)', 'Image 0: b 0.70 (wrong)', 'Image 0: c 0.20 (missed)']

class Viewing(nn.Module):
    "Score Σ g·x of a (bs, 2, 2, 2) input, through a `view`: it takes contiguous inputs only, as some models do"
    def __init__(self, g): super().__init__(); self.fc = nn.Linear(8, 2, bias=False); self.fc.weight.data = torch.stack([g.flatten(), -g.flatten()])
    def forward(self, x): return self.fc(x.view(len(x), -1))

def test_scorecam_by_hand():
    "Each channel scaled to [0, 1] masks the input; its weight is the softmax over the channels of the masked scores. A channel with one zero cell is not flat, a constant one is"
    torch.manual_seed(0)
    g, A = torch.randn(2, 2, 2, dtype=torch.float64), torch.rand(3, 2, 2, 2, dtype=torch.float64)   # ≥ 0, as after a ReLU
    A[0, 0, 0, 0], A[1, 1] = 0., .7                                  # a zero cell (its channel's minimum); a constant channel (its mask is 0)
    model = nn.Sequential(nn.Identity(), Viewing(g))
    lo, hi = A.amin((2, 3), keepdim=True), A.amax((2, 3), keepdim=True)
    masks = torch.where(hi > lo, (A - lo) / (hi - lo + 1e-8), 0.)
    s = torch.einsum('kij,bckij->bc', g, A[:, None] * masks[:, :, None])   # bs×channels: Σ g·(A ⊙ mask_c)
    want = torch.einsum('bc,bcij->bij', s.softmax(1), A)
    assert torch.allclose(gradcam_maps(model, A, 0, 0, 'scorecam'), want, atol=1e-12, rtol=0)

def test_scorecam_bf16_runs_its_passes_in_bfloat16():
    torch.manual_seed(0)
    g, A = torch.randn(2, 2, 2), torch.rand(3, 2, 2, 2)
    model, seen = nn.Sequential(nn.Identity(), Viewing(g)), []
    h = model[1].fc.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    try:
        fp = gradcam_maps(model, A, 0, 0, 'scorecam')
        assert set(seen) == {torch.float32}; seen.clear()
        bf = gradcam_maps(model, A, 0, 0, 'scorecam', bf16=True)
    finally: h.remove()
    assert seen[0] == torch.float32 and set(seen[1:]) == {torch.bfloat16}   # the clean pass, then the masked ones
    assert bf.dtype == torch.float32 and torch.allclose(bf, fp, atol=2e-2 * fp.abs().max().item(), rtol=0)
