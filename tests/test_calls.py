"""A module that runs more than once in a forward pass is addressed by its call: the default layer is the call the head
pools, `layer='name#i'` names one, every method catches that call's output and gradient only. And the regressions the
fuzzing of the trace (tests/test_fuzz.py) found, each by name."""
import warnings
import pytest, torch, torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18, densenet121
from timm.models.vision_transformer import VisionTransformer
from fastcam.hooks import n_hooks
from fastcam.trace import trace, get_call, layer_name, LayerCall, ChannelsFirst, Tokens
from fastcam.methods import METHODS, get_method
from fastcam.cam import class_maps, pick_method, cam_maps, cam_weights, map_caption

class Pad(nn.Module):
    def forward(self, x): return F.pad(x, (1, 1, 1, 1))

class PaddedConv(nn.Conv2d):
    "A convolution with a child module, its padding: fastai's `in_channels` sees leaves only and misses it"
    def __init__(self, *a, **k): super().__init__(*a, **k); self.pad = Pad()
    def forward(self, x): return super().forward(self.pad(x))

class EffLike(nn.Module):
    "Built like EfficientNet-PyTorch: one activation module after the stem and after the head's convolution, whose output is pooled"
    def __init__(self, shared=True):
        super().__init__()
        self._conv_stem, self._bn0 = PaddedConv(3, 8, 3, stride=2), nn.BatchNorm2d(8)
        self._blocks = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.BatchNorm2d(16), nn.ReLU())
        self._conv_head, self._bn1 = nn.Conv2d(16, 32, 1), nn.BatchNorm2d(32)
        self._avg_pooling, self._dropout, self._fc = nn.AdaptiveAvgPool2d(1), nn.Dropout(0.2), nn.Linear(32, 5)
        self._swish = nn.SiLU()
        self._swish_head = self._swish if shared else nn.SiLU()
    def forward(self, x):
        x = self._blocks(self._swish(self._bn0(self._conv_stem(x))))
        x = self._swish_head(self._bn1(self._conv_head(x)))
        return self._fc(self._dropout(self._avg_pooling(x).flatten(1)))

def eff(shared=True):
    torch.manual_seed(0)
    m = EffLike(shared).double().eval()
    for bn in (m._bn0, m._bn1, m._blocks[1]): bn.running_mean.normal_(); bn.running_var.uniform_(.5, 2)
    return m

def caught(model, module, x, call):
    "Plain PyTorch: the output of `module`'s call number `call` (a forward hook), and each image's predicted score's gradient on it"
    outs = []
    h = module.register_forward_hook(lambda m, i, o: outs.append(o))
    try:
        out = model(x.clone().requires_grad_())
        t = out.argmax(1)
        g, = torch.autograd.grad(out.gather(1, t[:, None]).sum(), outs[call])
    finally: h.remove()
    return outs[call].detach(), g, out.detach(), t

HAND = {'gradcam': lambda A, g: (g.mean((2, 3))[..., None, None] * A).sum(1),
        'hirescam': lambda A, g: (g * A).sum(1),
        'layercam': lambda A, g: (g.relu() * A).sum(1),
        'gradcamelementwise': lambda A, g: (g * A).relu().sum(1),
        'xgradcam': lambda A, g: ((g * A).sum((2, 3)) / A.sum((2, 3)))[..., None, None].mul(A).sum(1)}

def test_shared_activation_is_the_default_layer_and_cam_is_exact():
    "EfficientNet-PyTorch's shape: the activation's second call is what the head pools; CAM exact there; every gradient method by hand"
    m, x = eff(), torch.randn(3, 3, 32, 32, dtype=torch.float64)
    t = trace(m)                                                        # no batch: 3 channels, from the first convolution that runs
    assert get_call(m, None, x) == (m._swish, 1) and t.runs[m._swish] == 2 and t.cam == ''
    assert pick_method(m, x) == (get_method('cam'), 'the head is GAP → Linear')
    A, g, out, tgt = caught(m, m._swish, x, 1)
    torch.testing.assert_close(A.mean((2, 3)) @ m._fc.weight.T + m._fc.bias, out, rtol=1e-5, atol=1e-5)   # the CAM identity
    torch.testing.assert_close(class_maps(m, x), torch.einsum('bk,bkij->bij', m._fc.weight[tgt].detach(), A), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(cam_maps(m, x), torch.einsum('ck,bkij->bcij', m._fc.weight.detach(), A), rtol=1e-10, atol=1e-12)
    for name, f in HAND.items(): torch.testing.assert_close(class_maps(m, x, method=name), f(A, g), rtol=1e-9, atol=1e-12)
    assert map_caption('gradcam', layer_name(m, '_swish', x)) == 'Grad-CAM at _swish#1'
    assert n_hooks(m) == 0

def test_every_method_at_a_call_equals_the_same_map_of_a_module_of_its_own():
    "One module run twice, against the same model with two modules: each method's maps at 'act#0' / 'act#1' are those of each module"
    shared, two = eff(True), eff(False)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    for method in METHODS:
        for call, own in ((0, '_swish'), (1, '_swish_head')):
            if method == 'cam' and call == 0 or get_method(method).why_not(shared): continue   # CAM: only where the head pools; no attention here
            if get_method(method).whole:                                # FullGrad reads every bias layer, and refuses one
                with pytest.raises(ValueError, match=f'makes its maps from {get_method(method).whole} of the model'): class_maps(shared, x, method=method, layer=f'_swish#{call}')
                continue
            torch.manual_seed(1); a = class_maps(shared, x, method=method, layer=f'_swish#{call}')
            torch.manual_seed(1); b = class_maps(two, x, method=method, layer=own)
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=lambda s: f'{method} at call {call}: {s}')
    assert n_hooks(shared) + n_hooks(two) == 0

def test_explicit_call_on_resnets_block_relu():
    "torchvision's BasicBlock runs `relu` twice: '#0' is inside the block, the module (its last call) is the block's output"
    torch.manual_seed(0)
    m, x = resnet18().double().eval(), torch.randn(2, 3, 64, 64, dtype=torch.float64)
    relu = m.layer4[1].relu
    assert get_call(m, 'layer4.1.relu', x) == (relu, 1) and get_call(m, 'layer4.1.relu#0', x) == (relu, 0)
    assert get_call(m, LayerCall(relu, -2), x) == (relu, 0)
    A0, g0, _, _ = caught(m, relu, x, 0)
    first = class_maps(m, x, method='gradcam', layer='layer4.1.relu#0')
    torch.testing.assert_close(first, HAND['gradcam'](A0, g0), rtol=1e-9, atol=1e-12)
    last = class_maps(m, x, method='gradcam', layer='layer4.1.relu')
    torch.testing.assert_close(last, class_maps(m, x, method='gradcam', layer='layer4'), rtol=0, atol=0)
    assert not torch.allclose(first, last)
    assert layer_name(m, ['layer4.1.relu#0', 'layer4.1.relu'], x) == 'layer4.1.relu#0 + layer4.1.relu#1'
    with pytest.raises(ValueError, match=r"`layer` 'layer4.1.relu#5' is out of range: 'layer4.1.relu' runs 2 times"): get_call(m, 'layer4.1.relu#5', x)
    assert n_hooks(m) == 0

def test_head_messages_say_where_a_module_runs():
    "A ViT's final norm runs on the tokens before the class token is taken: said to be before the pooling, not after it"
    torch.manual_seed(0)
    vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=3).double().eval()
    why = trace(vit, torch.randn(1, 3, 32, 32, dtype=torch.float64)).cam
    assert 'on the feature map before the pooling' in why and 'after the pooling' not in why, why
    hidden = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    assert trace(hidden, torch.randn(1, 3, 16, 16)).cam == ("this head (AdaptiveAvgPool2d → Flatten → Linear → ReLU → Linear) has a ReLU "
                                                             "after the pooling, which is not affine")

def test_a_function_between_the_features_and_the_pooling_is_said():
    "torchvision's DenseNet: F.relu, then a functional pooling; no module outputs the pooled map, and the trace warns instead of mapping silently"
    torch.manual_seed(0)
    m, x = densenet121(num_classes=3).eval(), torch.randn(1, 3, 64, 64)
    with pytest.warns(UserWarning, match=r"DenseNet: no module outputs the feature map the head pools: a function \(such as `F.relu`\) runs on the output of 'features.norm5'"):
        t = trace(m, x)
    assert t.unseen and t.cam == t.unseen
    class MeanOnly(nn.Module):                                           # a functional mean alone pools the module's output: nothing to say
        def __init__(self): super().__init__(); self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 2)
        def forward(self, x): return self.fc(self.conv(x).mean((2, 3)))
    with warnings.catch_warnings(): warnings.simplefilter('error'); assert trace(MeanOnly(), x).unseen == ''

@pytest.mark.parametrize('fn', [F.relu, F.silu, torch.tanh], ids=['relu', 'silu', 'tanh'])
@pytest.mark.parametrize('pool', ['mean', 'amax', 'flatten'])
def test_a_function_before_a_functional_pooling_is_followed_through_the_graph(fn, pool):
    "Not in place (so the output's version can't tell) and pooled by a function (no pooling module's input to compare): the autograd graph says"
    class M(nn.Module):
        def __init__(self): super().__init__(); self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4 * (196 if pool == 'flatten' else 1), 2)
        def forward(self, x):
            h = fn(self.conv(x))
            return self.fc(h.mean((2, 3)) if pool == 'mean' else h.amax((2, 3)) if pool == 'amax' else h.flatten(1))
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="M: no module outputs the feature map the head pools"): t = trace(M().eval(), torch.randn(1, 3, 16, 16))
    assert t.unseen and t.cam == t.unseen

def test_fuzz_found_class_token_model_whose_blocks_are_all_blind():
    "Found by the fuzzer: tokens pooled by their class token, no block of the tokens' shape gets a gradient on its patches; the default layer is the last map that does (the patch embedding), not a blind one"
    class ClsOnly(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch, self.mix, self.norm, self.fc = nn.Conv2d(3, 8, 4, 4), nn.Linear(17, 17), nn.LayerNorm(8), nn.Linear(8, 2)
            self.cls = nn.Parameter(torch.randn(1, 1, 8))
        def forward(self, x):
            t = torch.cat([self.cls.expand(len(x), -1, -1), self.patch(x).flatten(2).transpose(1, 2)], 1)
            t = self.norm(t + self.mix(t.transpose(1, 2)).transpose(1, 2))   # the tokens mixed, then normalised one by one
            return self.fc(t[:, 0])
    torch.manual_seed(0)
    m, x = ClsOnly().double().eval(), torch.randn(2, 3, 16, 16, dtype=torch.float64)
    t = trace(m, x)
    assert t.layer is m.patch and t.layouts[m.patch] == ChannelsFirst()
    assert class_maps(m, x, method='gradcam').abs().sum() > 0

def test_fuzz_found_square_map_after_a_permute_read_by_its_pooling():
    "Found by the fuzzer: a 16-channel 16×16 map after a Permute back from channels last fits both readings; the pooling module that reads it says channels first"
    class Permute(nn.Module):
        def __init__(self, *d): super().__init__(); self.d = d
        def forward(self, x): return x.permute(*self.d)
    m = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), Permute(0, 2, 3, 1), nn.LayerNorm(16), Permute(0, 3, 1, 2),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2)).double().eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    t = trace(m, x)
    assert t.layer is m[3] and t.layouts[m[3]] == ChannelsFirst() and t.cam == ''
    with torch.no_grad(): A = m[3](m[2](m[1](m[0](x))))
    torch.testing.assert_close(class_maps(m, x), torch.einsum('bk,bkij->bij', m[6].weight[m(x).argmax(1)].detach(), A), rtol=1e-10, atol=1e-12)

def test_fuzz_found_tokens_transposed_read_as_tokens():
    "Found by the fuzzer: a token-mixing Linear's output (channels, tokens) = (16, 17), where 16 channels happen to be the 4×4 patches, was read as 16 tokens of 17 channels"
    class Mixer(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch, self.mix, self.norm, self.fc = nn.Conv2d(3, 16, 4, 4), nn.Linear(17, 17), nn.LayerNorm(16), nn.Linear(16, 2)
            self.cls = nn.Parameter(torch.randn(1, 1, 16))
        def forward(self, x):
            t = torch.cat([self.cls.expand(len(x), -1, -1), self.patch(x).flatten(2).transpose(1, 2)], 1)   # (bs, 17, 16)
            return self.fc(self.norm(t + self.mix(t.transpose(1, 2)).transpose(1, 2))[:, 0])
    torch.manual_seed(0)
    m, x = Mixer().double().eval(), torch.randn(2, 3, 16, 16, dtype=torch.float64)
    t = trace(m, x)
    assert not t.layouts[m.mix] and 'transposed' in t.layouts[m.mix].why
    assert t.layouts[m.norm] == Tokens(1, (4, 4))
    with pytest.raises(ValueError, match=r"`layer` 'mix' outputs \(2, 16, 17\), not a feature map .*\(channels, tokens\), not tokens"):
        class_maps(m, x, method='gradcam', layer='mix')
