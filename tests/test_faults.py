"An error anywhere inside a call that hooks a model leaves the model exactly as it was."
import torch, pytest
from torch import nn
from fastai.learner import Learner
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastcam.hooks import n_hooks, Hook, HookBwd, GraphCut
from fastcam.cam import cam_maps, gradcam_maps, class_maps, layer_grads
import fastcam.learner                                   # patches `Learner.cam` and `Learner.gradcam`

class Boom(nn.Module):
    "Raises in its forward when armed"
    armed = False
    def forward(self, x):
        if self.armed: raise RuntimeError('boom in forward')
        return x

def model_with_boom():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, padding=1), Boom()),
                      nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)))
    m.train(); m[0][0].eval(); m[0][2].weight.requires_grad_(False)
    return m

def learner(m):
    "A Learner around `m`, for its patched `cam` and `gradcam`"
    return Learner(DataLoaders(DataLoader([]), DataLoader([])), m, loss_func=nn.CrossEntropyLoss())

def state(m):
    return [x.training for x in m.modules()], [p.requires_grad for p in m.parameters()], [p.grad for p in m.parameters()], n_hooks(m)

@pytest.mark.parametrize('call, message', [
    (lambda m, x: gradcam_maps(m, x, layer=5), '`layer` 5 is out of range: the body has 4 groups'),
    (lambda m, x: gradcam_maps(m, x, target=3), '`target` 3 is out of range: the model has 3 classes'),
    (lambda m, x: gradcam_maps(m, x, layer='1.2'), "`layer` '1.2' outputs (2, 3), not a feature map"),
    (lambda m, x: cam_maps(m, x, layer=0), 'CAM is defined only on the features the head pools'),
    (lambda m, x: class_maps(m, x, method='gradcam', target=[0]), '`target` has 1 classes for a batch of 2 images'),
    (lambda m, x: class_maps(m, x, method='cam', target=7), '`target` 7 is out of range'),
    (lambda m, x: class_maps(m, x, method='lime'), "unknown `method` 'lime'"),
    (lambda m, x: layer_grads(m, x, layer=nn.Conv2d(3, 3, 1)), '`layer` is a module that is not part of this model'),
    (lambda m, x: learner(m).gradcam(x, layer=-7), '`layer` -7 is out of range'),
    (lambda m, x: learner(m).cam(x[:, :1]), '1, 8, 8] to have 3 channels, but got 1 channels instead'),
])
def test_model_unchanged_after_error(call, message):
    m, x = model_with_boom(), torch.randn(2, 3, 8, 8)
    before = state(m)
    with pytest.raises((ValueError, RuntimeError)) as e: call(m, x)
    assert message in str(e.value)
    assert state(m) == before

@pytest.mark.parametrize('call', [
    lambda m, x: gradcam_maps(m, x), lambda m, x: gradcam_maps(m, x, layer=0), lambda m, x: cam_maps(m, x),
    lambda m, x: class_maps(m, x, method='cam'), lambda m, x: layer_grads(m, x, target=1),
    lambda m, x: learner(m).gradcam(x), lambda m, x: learner(m).cam(x),
])
def test_model_unchanged_after_error_in_forward(call):
    "The model itself raises during the call, after the hooks are in place"
    m, x = model_with_boom(), torch.randn(2, 3, 8, 8)
    before = state(m)
    m[0][3].armed = True
    with pytest.raises(RuntimeError, match='boom in forward'): call(m, x)
    assert state(m) == before

@pytest.mark.parametrize('H', [Hook, HookBwd, GraphCut])
@pytest.mark.parametrize('where', ['forward', 'block'])
def test_hooks_removed_after_error(H, where):
    "The chapter's `with Hook(...)` pattern: an error in the forward or later in the block leaves no hook"
    m, x = model_with_boom(), torch.randn(2, 3, 8, 8)
    m[0][3].armed = where == 'forward'
    with pytest.raises(RuntimeError, match='boom'):
        with H(m[0][2]) as h:
            m(x)
            raise RuntimeError('boom in the block')
    assert n_hooks(m) == 0
    h.remove()                                            # idempotent
    assert n_hooks(m) == 0

@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')])
def test_a_non_finite_image_is_refused_by_name(bad):
    "An image with a NaN or an infinity in it is refused before any pass, the error naming it; the model is left as it was"
    m = model_with_boom(); before = state(m)
    x = torch.randn(4, 3, 8, 8); x[2, 1, 4, 4] = bad; x[3, 0, 0, 0] = bad
    for f in (lambda: class_maps(m, x), lambda: gradcam_maps(m, x), lambda: cam_maps(m, x)):
        with pytest.raises(ValueError, match=r"`x` has NaN or infinite values in images 2, 3: check how the images were read and normalised"): f()
    assert state(m) == before
