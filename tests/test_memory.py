"Nothing outlives a call: no tensor, no hook — also over many calls."
import gc, torch
from torch import nn
from fastcam.hooks import n_hooks
from fastcam.cam import gradcam_maps, cam_maps

def live_tensors(): return sum(1 for o in gc.get_objects() if issubclass(type(o), torch.Tensor))  # type(): no attribute lookups on proxies

def test_no_tensor_or_hook_outlives_calls():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, padding=1)),
                      nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)))
    x = torch.randn(4, 3, 16, 16)
    gradcam_maps(m, x); cam_maps(m, x); gc.collect()
    before = live_tensors()
    for _ in range(200): g = gradcam_maps(m, x, layer=0); c = cam_maps(m, x)
    del g, c; gc.collect()
    assert live_tensors() == before
    assert n_hooks(m) == 0
