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

def pgc_raw(model, layer, x, targets, reshape):
    "pytorch-grad-cam's Grad-CAM before its ReLU and scaling: its activations and gradients (through `reshape`), its weighting"
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    with GradCAM(model=model, target_layers=[layer], reshape_transform=reshape) as peer:
        out = peer.activations_and_grads(x)
        sum(ClassifierOutputTarget(t)(o) for t, o in zip(targets, out)).backward()
        a, g = (o[0].numpy() for o in (peer.activations_and_grads.activations, peer.activations_and_grads.gradients))
        cam = peer.get_cam_image(x, layer, None, a, g)
    model.zero_grad(set_to_none=True)
    return torch.from_numpy(cam)

def tokens_to_grid(prefix, h, w):
    "The `reshape_transform` pytorch-grad-cam's ViT tutorial writes by hand (here with the prefix and grid as arguments)"
    return lambda t: t[:, prefix:, :].reshape(t.size(0), h, w, t.size(2)).permute(0, 3, 1, 2)

def _vit(cls, **kw):
    torch.manual_seed(0)
    return cls(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=5, **kw).double().eval()

@pytest.mark.parametrize('name', ['vit', 'deit', 'vit_dynamic_160', 'swin', 'swin_tokens', 'tv_vit'])
def test_pytorch_grad_cam_agrees_on_transformers(name):
    "fastcam finds the layout and the grid itself; pytorch-grad-cam is told them with a `reshape_transform`"
    from timm.models.vision_transformer import VisionTransformer
    from timm.models.deit import VisionTransformerDistilled
    from timm.models.swin_transformer import SwinTransformer
    import torchvision.models as tvm
    torch.manual_seed(1)
    x, targets = torch.randn(3, 3, 32, 32, dtype=torch.float64), [0, 3, 4]
    if name == 'vit': model = _vit(VisionTransformer); layer, reshape = model.blocks[-1].norm1, tokens_to_grid(1, 4, 4)
    if name == 'deit': model = _vit(VisionTransformerDistilled); layer, reshape = model.blocks[-1].norm1, tokens_to_grid(2, 4, 4)
    if name == 'vit_dynamic_160':                       # the grid follows the input: 160 px in 16-px patches is 10×10
        torch.manual_seed(0)
        model = VisionTransformer(img_size=32, patch_size=16, embed_dim=32, depth=2, num_heads=2, num_classes=5, dynamic_img_size=True).double().eval()
        x, layer, reshape = torch.randn(3, 3, 160, 160, dtype=torch.float64), model.blocks[-1].norm1, tokens_to_grid(1, 10, 10)
    if name == 'swin':
        torch.manual_seed(0)
        model = SwinTransformer(img_size=32, patch_size=4, window_size=4, embed_dim=16, depths=(1, 1), num_heads=(1, 2), num_classes=5).double().eval()
        layer, reshape = model.layers[-1], lambda t: t.permute(0, 3, 1, 2)     # a stage: (bs, h, w, channels)
    if name == 'swin_tokens':                           # inside a block: (bs, h·w, channels), no prefix
        torch.manual_seed(0)
        model = SwinTransformer(img_size=32, patch_size=4, window_size=4, embed_dim=16, depths=(1, 1), num_heads=(1, 2), num_classes=5).double().eval()
        layer, reshape = model.layers[-1].blocks[-1].norm2, tokens_to_grid(0, 4, 4)
    if name == 'tv_vit':
        torch.manual_seed(0)
        model = tvm.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=5).double().eval()
        torch.nn.init.normal_(model.heads.head.weight)   # torchvision starts it at zero: no gradient would reach any layer
        layer, reshape = model.encoder.layers[-1].ln_1, tokens_to_grid(1, 4, 4)
    ours = gradcam_maps(model, x, target=targets, layer=layer)
    if 'swin' not in name: assert gradcam_maps(model, x, target=targets).equal(ours)   # the default layer is the peers' recommendation
    torch.testing.assert_close(ours, pgc_raw(model, layer, x, targets, reshape), rtol=1e-9, atol=1e-12)
    assert n_hooks(model) == 0
