"Nothing outlives a call: no tensor, no hook — also over many calls."
import gc, os, torch
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

def rss_mb():
    "Resident memory now, in MB (Linux)"
    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20

def test_1000_gradcam_calls_memory_flat():
    "The leak peers' users report: repeated Grad-CAM calls growing memory or piling up hooks. 1000 calls: neither"
    torch.manual_seed(0)
    m = nn.Sequential(nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(16, 32, 3, padding=1)),
                      nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 5)))
    x = torch.randn(8, 3, 32, 32)
    for _ in range(100): gradcam_maps(m, x, layer=0)                   # warm up the allocator
    gc.collect(); before, tensors = rss_mb(), live_tensors()
    for i in range(1000): g = gradcam_maps(m, x, target=i % 5)
    del g; gc.collect()
    # one leaked map per call would be 1000 × 8×32×32 floats = 31 MB; a leaked graph far more
    assert rss_mb() - before < 8, f'{rss_mb() - before:.1f} MB more after 1000 calls'
    assert live_tensors() == tensors and n_hooks(m) == 0
