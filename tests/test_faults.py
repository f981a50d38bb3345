"An error anywhere inside a call that hooks a model leaves the model exactly as it was."
import torch, pytest
from torch import nn
from fastcam.hooks import n_hooks
from fastcam.cam import cam_maps, gradcam_maps

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

def state(m):
    return [x.training for x in m.modules()], [p.requires_grad for p in m.parameters()], [p.grad for p in m.parameters()], n_hooks(m)

@pytest.mark.parametrize('call, message', [
    (lambda m, x: gradcam_maps(m, x, layer=5), '`layer` 5 is out of range: the body has 4 groups'),
    (lambda m, x: gradcam_maps(m, x, target=3), '`target` 3 is out of range: the model has 3 classes'),
    (lambda m, x: gradcam_maps(m, x, layer='1.2'), "`layer` '1.2' outputs (2, 3), not a feature map"),
    (lambda m, x: cam_maps(m, x, layer=0), 'CAM is defined only on the features the head pools'),
    ('boom', 'boom in forward'),
])
def test_model_unchanged_after_error(call, message):
    m, x = model_with_boom(), torch.randn(2, 3, 8, 8)
    before = state(m)
    if call == 'boom':
        m[0][3].armed = True
        call = lambda m, x: gradcam_maps(m, x)
    with pytest.raises((ValueError, RuntimeError)) as e: call(m, x)
    assert message in str(e.value)
    assert state(m) == before
