"Cross-checks of `gradcam_maps` against the peer libraries, and against a full-graph reference where peers go wrong."
import torch, pytest
from fastcam.hooks import Hook, HookBwd, n_hooks
from fastcam.cam import gradcam_maps
from fastcam.vis import normalize_maps

TARGETS = [1, 7, 300]

def reference(model, x, target, layer):
    "Grad-CAM the long way: full autograd graph, the chapter's `HookBwd`, one image at a time"
    maps = []
    for i, t in enumerate(target):
        with HookBwd(layer) as hb, Hook(layer) as h:
            model(x[i:i+1])[0, t].backward()
        maps.append((hb.stored[0].mean((1, 2), keepdim=True) * h.stored[0]).sum(0))
    model.zero_grad(set_to_none=True)
    return torch.stack(maps)

@pytest.mark.parametrize('name', ['layer4', 'layer3', 'layer4.1.bn2', 'layer3.5.conv2'])
def test_captum_agrees_raw(r34, xb, name):
    from captum.attr import LayerGradCam
    layer = r34.get_submodule(name)
    theirs = LayerGradCam(r34, layer).attribute(xb, target=TARGETS, relu_attributions=False)[:, 0]
    r34.zero_grad(set_to_none=True)
    torch.testing.assert_close(gradcam_maps(r34, xb, target=TARGETS, layer=name), theirs, rtol=1e-9, atol=1e-9)

@pytest.mark.parametrize('name', ['layer4', 'layer3'])
def test_torchcam_agrees_normalised(r34, xb, name):
    from torchcam.methods import GradCAM
    with GradCAM(r34, target_layer=name) as ext:
        theirs = torch.stack([ext(t, r34(xb[i:i+1]))[0][0] for i, t in enumerate(TARGETS)])
    r34.zero_grad(set_to_none=True)
    torch.testing.assert_close(normalize_maps(gradcam_maps(r34, xb, target=TARGETS, layer=name)), theirs, rtol=0, atol=1e-6)  # torchcam divides by max + 1e-8

def test_inplace_layer_matches_full_graph_reference(r34, xb):
    "`layer4.1.bn2`'s output is modified in place by `out += identity`: the maps must still be exact"
    layer = r34.layer4[1].bn2
    torch.testing.assert_close(gradcam_maps(r34, xb, target=TARGETS, layer=layer), reference(r34, xb, TARGETS, layer), rtol=1e-9, atol=1e-9)
    assert n_hooks(r34) == 0

def test_no_grad_and_frozen(r34, xb):
    "Inside `torch.no_grad()` and on a frozen model (where pytorch-grad-cam and torchcam fail) the maps are unchanged"
    expected = gradcam_maps(r34, xb, target=TARGETS)
    for p in r34.parameters(): p.requires_grad_(False)
    try:
        with torch.no_grad(): got = gradcam_maps(r34, xb, target=TARGETS)
    finally:
        for p in r34.parameters(): p.requires_grad_(True)
    torch.testing.assert_close(got, expected)
    assert all(p.grad is None for p in r34.parameters())
