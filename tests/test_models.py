"Models that are not fastcam's: torchvision's and timm's, directly and through fastai; wrapped by DDP or torch.compile"
import os, tempfile, pytest, torch, timm, torchvision.models as tvm
import torch.distributed as dist
from torch import nn
from fastcam.cam import trace, get_layer, pick_method, cam_maps, cam_weights, gradcam_maps, class_maps, unwrap, name_of, fuse_maps, Tokens
from fastcam.hooks import n_hooks

def by_hand(model, x, layer, target):
    "Grad-CAM in plain PyTorch at the module named `layer`: a forward hook keeps its output, autograd gives its gradient"
    model.eval(); kept = []
    def hook(m, i, o): kept.append(o); return o.clone()   # the rest of the model gets a copy: an in-place op there can't change `o`
    h = model.get_submodule(layer).register_forward_hook(hook)
    try:
        out = model(x)
        g, = torch.autograd.grad(out[torch.arange(len(x)), target].sum(), kept[-1])
    finally: h.remove()
    return torch.einsum('bk,bkij->bij', g.mean((2, 3)), kept[-1]).detach()

class HandWritten(nn.Module):
    "A CNN as people write them by hand: its head `nn.AvgPool2d(k)` on the last map (8×8 at 64 px), or `mean` in `forward` when `k` is None"
    def __init__(self, k=None):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.layer1 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU())
        self.pool, self.fc = (nn.AvgPool2d(k) if k else None), nn.Linear(16, 10)
    def forward(self, x):
        f = self.layer2(self.layer1(self.stem(x)))
        return self.fc(self.pool(f).flatten(1) if self.pool else f.mean((2, 3)))

# name, constructor, default layer, layer -2, CAM exact on its own head
ZOO = [
    ('AvgPool2d(8) on 8x8', lambda: HandWritten(8), 'layer2', 'layer1', True),      # a global average, though not an adaptive pool
    ('AvgPool2d(6) on 8x8', lambda: HandWritten(6), 'layer2', 'layer1', False),     # a 6×6 corner: its CAM would be wrong
    ('mean in forward', lambda: HandWritten(), 'layer2', 'layer1', True),
    ('resnet18', lambda: tvm.resnet18(), 'layer4', 'layer3', True),
    ('densenet121', lambda: tvm.densenet121(), 'features.norm5', 'features.denseblock4', False),   # a functional ReLU before the pooling
    ('mobilenet_v3_small', lambda: tvm.mobilenet_v3_small(), 'features.12', 'features.11', False), # Linear → Hardswish → Linear
    ('efficientnet_b0', lambda: tvm.efficientnet_b0(), 'features.8', 'features.7', True),
    ('convnext_tiny', lambda: tvm.convnext_tiny(), 'features.7', 'features.6', False),              # LayerNorm2d after the pooling
    ('vgg11', lambda: tvm.vgg11(), 'features.20', 'features.19', False),
    ('regnet_x_400mf', lambda: tvm.regnet_x_400mf(), 'trunk_output', 'stem', True),
    ('timm resnet18', lambda: timm.create_model('resnet18'), 'layer4', 'layer3', True),
    ('timm convnext_tiny', lambda: timm.create_model('convnext_tiny'), 'stages.3', 'stages.2', False),
    ('timm efficientnet_b0', lambda: timm.create_model('efficientnet_b0'), 'bn2', 'blocks.4', True),  # its last activation is inside bn2
    ('timm regnetx_002', lambda: timm.create_model('regnetx_002'), 's4', 's3', True),
]

@pytest.mark.parametrize('name, make, default, second, exact', ZOO, ids=[z[0] for z in ZOO])
def test_zoo(name, make, default, second, exact):
    torch.manual_seed(0)
    model, x = make().double().eval(), torch.randn(2, 3, 64, 64, dtype=torch.float64)
    assert name_of(model, get_layer(model, x=x)) == default
    assert name_of(model, get_layer(model, -2, x)) == second
    assert (trace(model, x).cam == '') == exact
    assert pick_method(model, x)[0].name == ('cam' if exact else 'gradcam')
    with torch.no_grad(): logits = model(x)
    t = logits.argmax(1)
    g = gradcam_maps(model, x)
    torch.testing.assert_close(g, by_hand(model, x, default, t), rtol=1e-9, atol=1e-12)
    if exact:                                                            # CAM: its identity, and Grad-CAM × h·w == CAM
        cams = cam_maps(model, x)
        torch.testing.assert_close(cams.mean((2, 3)) + cam_weights(model, x)[1], logits, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(g * g[0].numel(), cams[torch.arange(2), t], rtol=1e-7, atol=1e-9)
    else:
        with pytest.raises(ValueError, match='CAM needs a head that is global average pooling'): cam_maps(model, x)
    torch.testing.assert_close(class_maps(model, x), cams[torch.arange(2), t] if exact else g)
    assert n_hooks(model) == 0

def test_avgpool_head_is_global_by_its_shape():
    "An nn.AvgPool2d head is a GAP only when its window is the whole map: a constant image, which any window averages alike, can't fool it"
    def model(k): return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AvgPool2d(k), nn.Flatten(), nn.Linear(4, 2)).eval()   # 8×8 maps at 10 px
    blank, x = torch.ones(1, 3, 10, 10), torch.randn(2, 3, 10, 10)
    part, whole = model(6), model(8)
    assert 'pools with AvgPool2d, not a global average' in trace(part, blank).cam and pick_method(part, x)[0].name == 'gradcam'
    assert trace(whole, blank).cam == '' and pick_method(whole, x)[0].name == 'cam'
    with torch.no_grad(): torch.testing.assert_close(cam_maps(whole, x).mean((2, 3)) + cam_weights(whole, x)[1], whole(x))

def test_layer_list_in_one_pass():
    "A gradient method's maps of several layers (nested ones too, in any order) from one forward pass: each layer's as alone, fused"
    torch.manual_seed(0)
    model, x = tvm.resnet18().double().eval(), torch.randn(2, 3, 64, 64, dtype=torch.float64)
    layers, passes = ['layer4', 'layer3', 'layer4.1.bn2', 'layer2'], []
    trace(model, x)                                                       # once per model and input size: not a pass of the maps
    with model.register_forward_pre_hook(lambda m, args: passes.append(1)):
        for method in ('gradcam', 'gradcam++', 'hirescam'):
            passes.clear()
            fused, logits = class_maps(model, x, 3, method, layers, with_logits=True, fuse='max')
            assert len(passes) == 1
            one = [gradcam_maps(model, x, 3, l, method) for l in layers]
            torch.testing.assert_close(fused, fuse_maps(one, 'max'), rtol=1e-9, atol=1e-12)
    with torch.no_grad(): torch.testing.assert_close(logits, model(x))
    assert n_hooks(model) == 0

def test_wrapped_models():
    "DistributedDataParallel (what fastai's `distrib_ctx` makes) and torch.compile are looked through"
    torch.manual_seed(0)
    model, x = tvm.resnet18().double().eval(), torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with tempfile.TemporaryDirectory() as d:
        dist.init_process_group('gloo', init_method=f'file://{d}/pg', rank=0, world_size=1)
        try:
            for wrapped in (nn.parallel.DistributedDataParallel(model), torch.compile(model)):
                assert unwrap(wrapped) is model
                assert get_layer(wrapped, x=x) is model.layer4 and get_layer(wrapped, -2, x) is model.layer3
                assert get_layer(wrapped, 'layer3') is model.layer3
                torch.testing.assert_close(class_maps(wrapped, x), class_maps(model, x), rtol=0, atol=0)
                torch.testing.assert_close(gradcam_maps(wrapped, x, layer=-2), gradcam_maps(model, x, layer=-2), rtol=0, atol=0)
        finally: dist.destroy_process_group()

TIMM = [('resnet18', 'layer4', 'layer3'), ('convnext_tiny', 'stages.3', 'stages.2'),
        ('efficientnet_b0', 'bn2', 'blocks.4'), ('regnetx_002', 's4', 's3')]

@pytest.fixture(scope='module')
def dls():
    from fastcam.data import pets_dls
    with tempfile.TemporaryDirectory() as d: yield pets_dls(n=40, size=64, path=d, bs=8, num_workers=0)

@pytest.mark.parametrize('arch, default, second', TIMM, ids=[t[0] for t in TIMM])
def test_timm_through_fastai(dls, arch, default, second):
    "fastai's `vision_learner` with a timm name: a `TimmBody` and fastai's default head; ints index timm's stages"
    import matplotlib; matplotlib.use('Agg')
    from fastai.vision.learner import vision_learner
    from fastcam.callback import TopLossCAM
    import fastai.callback.progress                       # `no_bar`
    torch.manual_seed(0)
    learn = vision_learner(dls, arch, pretrained=False, cbs=TopLossCAM(k=3, fname=None))
    model, x = learn.model, dls.valid.one_batch()[0].as_subclass(torch.Tensor)
    assert name_of(model, get_layer(model, x=x)) == f'0.model.{default}'
    assert name_of(model, get_layer(model, -2, x)) == f'0.model.{second}'
    assert get_layer(model, second) is model[0].model.get_submodule(second)       # the timm model's own names
    assert pick_method(model, x)[0].name == 'gradcam'
    torch.testing.assert_close(class_maps(model, x), gradcam_maps(model, x, layer=default))
    if arch == 'resnet18':                                # the callback during a fit (once: training costs time)
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-4)
        res = learn.top_loss_cam.result
        assert (res.method, res.layer_name, len(res)) == ('gradcam', f'0.model.{default}', 3)
    with learn.no_bar(): axs = learn.show_cam(3)
    assert len(axs) == 3 and axs[0].figure._suptitle.get_text() == f"Grad-CAM at 0.model.{default} (auto: the head can't give CAM)"
    assert n_hooks(model) == 0

def test_every_method_on_tokens():
    "Every method on a ViT's tokens and a Swin's channels-last stage: batched (== one image at a time), hook-safe, model left as found"
    from timm.models.vision_transformer import VisionTransformer
    from timm.models.swin_transformer import SwinTransformer
    from fastcam.cam import METHODS, get_method
    torch.manual_seed(0)
    vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=3).double()
    swin = SwinTransformer(img_size=32, patch_size=4, window_size=4, embed_dim=16, depths=(1, 1), num_heads=(1, 2), num_classes=3).double()
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    for model, layer in ((vit, None), (swin, -1)):
        model.train(); model.patch_embed.requires_grad_(False)                # a model in training, partly frozen
        before = [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()]
        for method in METHODS:
            if method == 'cam' and model is vit: continue                     # its head reads the class token: no CAM
            if why := get_method(method).why_not(model):                      # the attention methods: a ViT's attention, not a Swin's windows; the guided ones: ReLU networks
                assert model is swin and 'no self-attention module fastcam can read' in why or 'defined for ReLU networks' in why, (method, why)   # the guided methods: GELU
                with pytest.raises(ValueError, match='does not apply to this model'): class_maps(model, x, method=method)
                continue
            whole = get_method(method).whole                                  # FullGrad: the whole model, maps at the image's size
            lyr = None if method == 'cam' or whole else layer                 # CAM: the layer the head pools
            with torch.no_grad(): maps = class_maps(model, x, [0, 1, 2], method, lyr)
            assert maps.shape == ((3, 32, 32) if method == 'fullgrad' else (3, 4, 4)), (method, maps.shape)   # FullGrad's at the image's size
            if whole and layer is not None:
                with pytest.raises(ValueError, match=f"{get_method(method).label} makes its maps from {whole} of the model"): class_maps(model, x, method=method, layer=layer)
            if method == 'smoothgradcampp':                                   # noise on the input: the same noise, the same maps
                torch.manual_seed(1); a = class_maps(model, x, [0, 1, 2], method, lyr)
                torch.manual_seed(1); assert torch.equal(a, class_maps(model, x, [0, 1, 2], method, lyr))
                continue
            one = torch.cat([class_maps(model, x[i:i+1], [i], method, lyr) for i in range(3)])
            torch.testing.assert_close(maps, one, rtol=1e-9, atol=1e-12)
        assert ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()]) == before
        assert n_hooks(model) == 0 and all(p.grad is None for p in model.parameters())

def test_vit_through_fastai(dls):
    "fastai's `vision_learner` with a timm ViT name: `TopLossCAM` and `show_cam` make Grad-CAM maps on the token grid"
    import matplotlib; matplotlib.use('Agg')
    from fastai.vision.learner import vision_learner
    from fastcam.callback import TopLossCAM
    import fastai.callback.progress
    torch.manual_seed(0)
    learn = vision_learner(dls, 'vit_tiny_patch16_224', pretrained=False, img_size=64, cbs=TopLossCAM(k=3, fname=None))
    model, x = learn.model, dls.valid.one_batch()[0].as_subclass(torch.Tensor)
    assert name_of(model, get_layer(model, x=x)) == '0.model.blocks.11.norm1'
    assert trace(model, x).layouts[get_layer(model, x=x)] == Tokens(1, (4, 4))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-4)
    res = learn.top_loss_cam.result
    assert (res.method, res.layer_name, tuple(res.maps.shape)) == ('gradcam', '0.model.blocks.11.norm1', (3, 4, 4))
    torch.testing.assert_close(res.maps, gradcam_maps(model, torch.cat([b[0] for b in dls.valid])[res.idxs].as_subclass(torch.Tensor), res.predicted))
    with learn.no_bar(): axs = learn.show_cam(3)
    assert axs[0].figure._suptitle.get_text() == "Grad-CAM at 0.model.blocks.11.norm1 (auto: the head can't give CAM)"
    with pytest.raises(ValueError, match="`layer` '0.model.blocks.11' gets no gradient"): learn.show_cam(3, layer=-1)
    assert not learn.lock.locked()                                            # raised before `get_preds` took fastai's lock: later passes run
    xs = torch.cat([b[0] for b in dls.valid]).as_subclass(torch.Tensor)
    for method, label in (('rollout', 'attention rollout'), ('attngrad', 'gradient-weighted attention'), ('legrad', 'LeGrad')):
        res = learn.top_losses_cam(3, method=method)                         # through fastai's wrapper and head: LeGrad's block scores too
        assert res.method == method and tuple(res.maps.shape) == (3, 4, 4)
        torch.testing.assert_close(res.maps, class_maps(model, xs[res.idxs], res.predicted, method))
        with learn.no_bar(): axs = learn.show_cam(3, method=method)
        assert axs[0].figure._suptitle.get_text() == f'{label} at every attention layer'
    import numpy as np, pandas as pd, fastcam.explain as ex
    files = [str(f) for f in dls.valid.items[:4]]
    with tempfile.TemporaryDirectory() as out:                                # `fastcam explain --method legrad` on the ViT learner
        idx = ex.explain_images(learn, *files, out=out, method='legrad', bs=3)
        assert (idx.status == 'ok').all() and (idx.method == 'legrad').all()
        saved = torch.stack([torch.tensor(np.load(os.path.join(out, f))) for f in idx.map_file])
    x4 = learn.dls.test_dl([ex.load_rgb(f) for f in files]).one_batch()[0].as_subclass(torch.Tensor)
    ref = class_maps(model, x4, None, 'legrad')
    torch.testing.assert_close(saved, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    assert n_hooks(model) == 0

@pytest.mark.parametrize('name', ['fcn_resnet50', 'deeplabv3_mobilenet_v3_large'])
def test_torchvision_segmentation(name):
    "torchvision's FCN and DeepLab: a dict of score maps, read by `output='out'`; no default layer but a clear error; SEG-Grad-CAM == by hand"
    from torchvision.models import segmentation as tvs
    from fastcam.methods import seg_target, get_method
    torch.manual_seed(0)
    model = getattr(tvs, name)(weights=None, weights_backbone=None, num_classes=3, aux_loss=False).eval()
    x = torch.randn(2, 3, 64, 64)
    with pytest.raises(ValueError, match=r"the model returns a OrderedDict with keys \['out'\], not a tensor of class scores: pass `output=`"):
        class_maps(model, x, 1, layer='backbone')
    with pytest.raises(ValueError, match=r"this model gives score maps \(3, 64, 64\) \(a segmentation model\), so no head pools a layer"):
        class_maps(model, x, 1, output='out')
    layer = 'backbone.layer4' if name.startswith('fcn') else 'backbone.16'
    for target in (1, seg_target(2, torch.rand(64, 64, generator=torch.Generator().manual_seed(1)) > .5)):
        kept = []
        h = model.get_submodule(layer).register_forward_hook(lambda m, i, o: kept.append(o))
        try:
            out = model(x)['out']                                                # 2×3×64×64
            score = seg_target(target)(out) if not callable(target) else target(out)
            g, = torch.autograd.grad(score.sum(), kept[-1])
        finally: h.remove()
        hand = torch.einsum('bk,bkij->bij', g.mean((2, 3)), kept[-1]).detach()
        ours = class_maps(model, x, target, layer=layer, output='out')
        torch.testing.assert_close(ours, hand, rtol=1e-4, atol=1e-5 * hand.abs().max().item())
    from fastcam.cam import reading
    assert pick_method(reading(model, x, 'out')[0], x, 'auto', layer, 1) == (get_method('gradcam'), 'a segmentation model gives score maps')
    assert n_hooks(model) == 0
