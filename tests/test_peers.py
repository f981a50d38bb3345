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

# Grad-CAM's variants against torchcam ------------------------------------------------------------------------------

A = torch.tensor([[[1., 2], [0, 1]], [[1, -1], [1, -1]]], dtype=torch.float64)[None]    # 1×2×2×2, ΣA = 4 and 0
G = torch.tensor([[[1., -1], [2, 0]], [[3, 0], [0, -2]]], dtype=torch.float64)          # the gradient at the layer

def toy():
    "Layer 0 outputs its input (a 1×1 identity conv, which torchcam can hook); the class-0 score is Σ G·A"
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 2, 1, bias=False), torch.nn.Flatten(), torch.nn.Linear(8, 2, bias=False)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2)[:, :, None, None]); net[2].weight.copy_(torch.stack([G.flatten(), torch.zeros(8)]))
    return net.eval()

def test_gradcampp_is_the_formula_and_torchcam_is_not():
    "Grad-CAM++ weights on the toy, by hand: 11/30 and 3/2. torchcam's GradCAMpp gives Σ g²·relu(g) = 9 and 27"
    from torchcam.methods import GradCAMpp
    net = toy()
    ours = gradcam_maps(net, A, target=0, layer=0, method='gradcam++')[0]
    torch.testing.assert_close(ours, 11/30 * A[0, 0] + 3/2 * A[0, 1], rtol=1e-12, atol=1e-12)
    with GradCAMpp(net, target_layer=net[0], input_shape=(2, 2, 2)) as ext:
        theirs = ext(0, net(A), normalized=False)[0][0]
    torch.testing.assert_close(theirs, (9 * A[0, 0] + 27 * A[0, 1]).relu(), rtol=1e-12, atol=1e-12)   # the defect, pinned
    assert not torch.allclose(theirs, ours.relu())

@pytest.mark.parametrize('method,name', [('xgradcam', 'XGradCAM'), ('layercam', 'LayerCAM')])
@pytest.mark.parametrize('layer', ['layer4', 'layer3'])
def test_torchcam_variants_agree(r34, xb, method, name, layer):
    import torchcam.methods as tcm
    with getattr(tcm, name)(r34, target_layer=layer) as ext:
        theirs = torch.stack([ext(t, r34(xb[i:i+1]), normalized=False)[0][0] for i, t in enumerate(TARGETS)])
    r34.zero_grad(set_to_none=True)
    torch.testing.assert_close(gradcam_maps(r34, xb, target=TARGETS, layer=layer, method=method).relu(), theirs, rtol=1e-9, atol=1e-9)
