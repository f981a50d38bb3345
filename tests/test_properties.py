"Property tests of the pure functions: shapes, the CAM identity and box invariants over random sizes and weights."
import torch
from torch import nn
from hypothesis import given, settings, strategies as st
from torchvision.ops import box_iou as tv_box_iou
from fastcam.hooks import n_hooks
from fastcam.cam import cam_maps, gradcam_maps
from fastcam.vis import normalize_maps, upsample_maps
from fastcam.metrics import box_iou, cam_boxes, pointing_game

dims = dict(B=st.integers(1, 4), C=st.integers(1, 6), h=st.integers(1, 9), w=st.integers(1, 9), n=st.integers(1, 5))

def gap_linear(C, n, seed):
    "A conv body with C channels, then GAP → Linear to n classes, in float64, random weights and bias"
    torch.manual_seed(seed)
    return nn.Sequential(nn.Sequential(nn.Conv2d(3, C, 3, padding=1), nn.ReLU(inplace=True)),
                         nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(C, n))).double()

@settings(max_examples=40, deadline=None)
@given(**dims, seed=st.integers(0, 2**16))
def test_map_shapes_and_cam_identity(B, C, h, w, n, seed):
    m, x = gap_linear(C, n, seed), torch.randn(B, 3, h, w, dtype=torch.float64)
    maps = cam_maps(m, x)
    assert maps.shape == (B, n, h, w)
    with torch.no_grad(): logits = m(x)
    torch.testing.assert_close(maps.mean((2, 3)) + m[1][2].bias, logits, rtol=1e-10, atol=1e-10)   # the CAM identity
    g = gradcam_maps(m, x, target=torch.randint(0, n, (B,)))
    assert g.shape == (B, h, w) and n_hooks(m) == 0
    torch.testing.assert_close(gradcam_maps(m, x, target=0) * (h * w), maps[:, 0], rtol=1e-10, atol=1e-10)  # Grad-CAM · hw = CAM

@settings(max_examples=40, deadline=None)
@given(B=dims['B'], h=dims['h'], w=dims['w'], H=st.integers(1, 64), W=st.integers(1, 64), seed=st.integers(0, 2**16))
def test_display_helpers(B, h, w, H, W, seed):
    torch.manual_seed(seed)
    maps = torch.randn(B, h, w)
    up = upsample_maps(maps, (H, W))
    assert up.shape == (B, H, W)
    assert (up >= maps.amin((1, 2), keepdim=True) - 1e-5).all() and (up <= maps.amax((1, 2), keepdim=True) + 1e-5).all()  # bilinear: no overshoot
    nm = normalize_maps(maps)
    assert nm.shape == maps.shape and (nm >= 0).all() and (nm <= 1).all()

box = st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(1, 50), st.integers(1, 50)).map(
    lambda t: (t[0], t[1], t[0] + t[2], t[1] + t[3]))                       # non-empty boxes

@given(st.lists(st.tuples(box, box), min_size=1, max_size=8))
def test_iou_invariants(pairs):
    a, b = (torch.tensor([p[i] for p in pairs], dtype=torch.float64) for i in (0, 1))
    iou = box_iou(a, b)
    assert torch.equal(box_iou(a, a), torch.ones(len(a), dtype=torch.float64))      # IoU(a, a) = 1
    assert torch.equal(iou, box_iou(b, a))                                              # symmetric
    assert ((iou >= 0) & (iou <= 1)).all()
    torch.testing.assert_close(iou, tv_box_iou(a, b).diagonal(), rtol=1e-12, atol=1e-12)  # torchvision agrees
    shift = torch.tensor([7., -3., 7., -3.], dtype=torch.float64)
    torch.testing.assert_close(box_iou(a + shift, b + shift), iou)                     # translation invariant

def flood_fill_box(m, thresh=.2):
    "The CAM paper's box by hand: 4-connected regions above `thresh`·max found in raster order, the largest one's bounds"
    h, w = m.shape
    keep, seen, best = m >= thresh * m.max(), set(), (0, None)
    for start in ((i, j) for i in range(h) for j in range(w)):
        if not keep[start] or start in seen: continue
        todo, cells = [start], []
        seen.add(start)
        while todo:
            i, j = todo.pop(); cells.append((i, j))
            for n in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
                if 0 <= n[0] < h and 0 <= n[1] < w and keep[n] and n not in seen: seen.add(n); todo.append(n)
        if len(cells) > best[0]: best = (len(cells), cells)
    ys, xs = zip(*best[1])
    return [min(xs), min(ys), max(xs) + 1, max(ys) + 1]

@settings(max_examples=60, deadline=None)
@given(B=dims['B'], h=dims['h'], w=dims['w'], seed=st.integers(0, 2**16))
def test_cam_box_matches_flood_fill(B, h, w, seed):
    torch.manual_seed(seed)
    maps = torch.randn(B, h, w).relu() + torch.rand(B, 1, 1) * .01          # some cells near zero, some well above
    assert cam_boxes(maps).tolist() == [flood_fill_box(m) for m in maps]
    full = torch.tensor([[0., 0., w, h]]).expand(B, 4)
    assert torch.equal(cam_boxes(torch.ones(B, h, w)), full)                           # a flat map: the whole image
    assert pointing_game(torch.ones(B, h, w), full, (h, w)).all()
