"""Fuzzing the trace: random classifiers built the ways people build them (1-4 conv stages; activations as modules,
functions, in place, or one module shared by several stages and the head; BatchNorm, GroupNorm, LayerNorm2d; every
pooling; heads of Linear, BatchNorm1d, Dropout or a hidden layer; modules declared in a shuffled order; channels-last
and token stages), each checked against plain PyTorch on the tensor its head really pools: the model keeps that tensor
(`seen`) as it runs, so the reference needs no fastcam code.

`FASTCAM_FUZZ=10000 pytest tests/test_fuzz.py` (or `make fuzz`) runs new random examples, more than CI's 200 seeded ones."""
import os, random, warnings
import pytest, torch, torch.nn.functional as F
from torch import nn
from hypothesis import given, settings, strategies as st, HealthCheck, event
from fastai.layers import AdaptiveConcatPool2d
from timm.layers import LayerNorm2d
from fastcam.hooks import n_hooks
from fastcam.trace import trace, Tokens, ChannelsFirst, ChannelsLast
from fastcam.methods import capture
from fastcam.cam import class_maps, pick_method

N_EXAMPLES = int(os.environ.get('FASTCAM_FUZZ', 200))
SEEDED = 'FASTCAM_FUZZ' not in os.environ                             # CI: the same 200 examples every run; `make fuzz`: new ones each time
SIZE, CLASSES = 32, 3
POOLS = {'nchw': ['avg', 'max', 'concat', 'avgpool', 'mean', 'amax', 'flatten'], 'nhwc': ['mean12', 'back'], 'tokens': ['mean', 'cls']}
CAM_POOLS = {'avg', 'avgpool', 'mean', 'mean12', 'back'}             # global averages: with an affine head, CAM is exact

class Permute(nn.Module):
    def __init__(self, *dims): super().__init__(); self.dims = dims
    def forward(self, x): return x.permute(*self.dims)

class TokenMix(nn.Module):
    "Mixes the tokens (as attention does): each token gets a learned sum of all tokens"
    def __init__(self, n): super().__init__(); self.lin = nn.Linear(n, n)
    def forward(self, x): return x + self.lin(x.transpose(1, 2)).transpose(1, 2)

class Net(nn.Module):
    "A classifier built from `spec`; its modules are declared in the order `rng` shuffles them to"
    def __init__(self, spec, rng):
        super().__init__()
        self.spec, mods, c = spec, {}, 3
        hw = SIZE
        for i, (norm, act, stride) in enumerate(spec['stages']):
            o = 4 * (i + 1)
            mods[f'conv{i}'] = nn.Conv2d(c, o, 3, stride, 1)
            if norm != 'none': mods[f'norm{i}'] = {'bn': nn.BatchNorm2d(o), 'gn': nn.GroupNorm(2, o), 'ln2d': LayerNorm2d(o)}[norm]
            if act in ('module', 'inplace'): mods[f'act{i}'] = nn.ReLU(inplace=act == 'inplace')
            c, hw = o, -(-hw // stride)
        mods['shared'] = nn.SiLU()
        end, pool = spec['end'], spec['pool']
        if end == 'nhwc':
            mods.update(last=Permute(0, 2, 3, 1), ln=nn.LayerNorm(c), mlp=nn.Linear(c, c))
            if pool == 'back': mods.update(first=Permute(0, 3, 1, 2), pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten())
        elif end == 'tokens':
            hw //= 2
            mods.update(patch=nn.Conv2d(c, c, 2, 2), mix=TokenMix(hw * hw + 1), tln=nn.LayerNorm(c), tmlp=nn.Linear(c, c))
            self.cls = nn.Parameter(torch.randn(1, 1, c))
        else:
            if pool in ('avg', 'max', 'concat', 'avgpool'):
                mods['pool'] = {'avg': nn.AdaptiveAvgPool2d(1), 'max': nn.AdaptiveMaxPool2d(1), 'concat': AdaptiveConcatPool2d(1),
                                'avgpool': nn.AvgPool2d(hw)}[pool]
                mods['flat'] = nn.Flatten()
        f = c * (2 if pool == 'concat' else hw * hw if pool == 'flatten' else 1)
        head = spec['head']
        if head == 'bn1d': mods['hbn'] = nn.BatchNorm1d(f)
        if head == 'dropout': mods['drop'] = nn.Dropout(.3)
        if head in ('hidden', 'hidden_shared'): mods.update(hid=nn.Linear(f, 6), hact=nn.ReLU()); f = 6
        mods['fc'] = nn.Linear(f, CLASSES)
        names = list(mods); rng.shuffle(names)
        for n in names: self.add_module(n, mods[n])
        for m in self.modules():                                         # running statistics that are not the identity
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)): m.running_mean.normal_(); m.running_var.uniform_(.5, 2)

    def act(self, i, a, x):
        if a in ('module', 'inplace'): return getattr(self, f'act{i}')(x)
        if a == 'function': return F.relu(x)
        if a == 'shared': return self.shared(x)
        return x

    def forward(self, x):
        s = self.spec
        for i, (norm, a, _) in enumerate(s['stages']):
            x = getattr(self, f'conv{i}')(x)
            if norm != 'none': x = getattr(self, f'norm{i}')(x)
            x = self.act(i, a, x)
        if s['end'] == 'nhwc':
            x = self.mlp(self.ln(self.last(x)))
            if s['pool'] == 'back': x = self.first(x); self.seen = x; x = self.flat(self.pool(x))
            else: self.seen = x; x = x.mean((1, 2))
        elif s['end'] == 'tokens':
            x = self.patch(x).flatten(2).transpose(1, 2)
            x = self.tmlp(self.tln(self.mix(torch.cat([self.cls.expand(len(x), -1, -1), x], 1))))
            self.seen = x
            x = x[:, 0] if s['pool'] == 'cls' else x[:, 1:].mean(1)
        else:
            self.seen = x
            p = s['pool']
            x = (self.flat(self.pool(x)) if hasattr(self, 'pool') else x.mean((2, 3)) if p == 'mean' else
                 x.amax((2, 3)) if p == 'amax' else x.flatten(1))
        h = s['head']
        if h == 'bn1d': x = self.hbn(x)
        if h == 'dropout': x = self.drop(x)
        if h == 'hidden': x = self.hact(self.hid(x))
        if h == 'hidden_shared': x = self.shared(self.hid(x))
        return self.fc(x)

@st.composite
def specs(draw):
    n = draw(st.integers(1, 4))
    end = draw(st.sampled_from(['nchw', 'nchw', 'nhwc', 'tokens']))
    stages = [(draw(st.sampled_from(['bn', 'gn', 'ln2d', 'none'])), draw(st.sampled_from(['module', 'function', 'inplace', 'shared', 'none'])),
               draw(st.sampled_from([1, 2]))) for _ in range(n)]
    if end == 'tokens': stages = [(a, b, 1 if i >= 2 else s) for i, (a, b, s) in enumerate(stages)]   # a map of 8×8 or more for the patches
    if draw(st.booleans()): stages[-1] = (stages[-1][0], 'function', stages[-1][2])   # often a function right before the head (DenseNet's F.relu)
    return dict(stages=stages, end=end, pool=draw(st.sampled_from(POOLS[end])),
                head=draw(st.sampled_from(['linear', 'bn1d', 'dropout', 'hidden', 'hidden_shared'])), order=draw(st.integers(0, 2**16)),
                seed=draw(st.integers(0, 2**16)))

def build(spec):
    torch.manual_seed(spec['seed'])
    return Net(spec, random.Random(spec['order'])).double().eval(), torch.randn(2, 3, SIZE, SIZE, dtype=torch.float64)

def reference(model, x, target):
    "The tensor the head pools, as a map, and the gradient of each image's target score on it: plain PyTorch"
    for p in model.parameters(): p.requires_grad_(False)
    out = model(x.clone().requires_grad_())
    seen = model.seen
    g, = torch.autograd.grad(out.gather(1, target[:, None]).sum(), seen)
    return seen.detach(), g, out.detach()

def to_map(t, spec):
    "The pooled tensor `t`, in the model's own layout, as (bs, k, h, w)"
    if t.ndim == 3: g = int((t.shape[1] - 1) ** .5); return t[:, 1:].transpose(1, 2).reshape(len(t), t.shape[2], g, g)
    if spec['end'] == 'nhwc' and spec['pool'] == 'mean12': return t.permute(0, 3, 1, 2)
    return t

HAND = {   # each gradient method by its definition, from the activations A and gradients g (bs, k, h, w)
    'gradcam': lambda A, g: (g.mean((2, 3))[..., None, None] * A).sum(1),
    'hirescam': lambda A, g: (g * A).sum(1),
    'layercam': lambda A, g: (g.relu() * A).sum(1),
    'gradcamelementwise': lambda A, g: (g * A).relu().sum(1),
    'xgradcam': lambda A, g: ((g * A).sum((2, 3)) / A.sum((2, 3))).nan_to_num(0, 0, 0)[..., None, None].mul(A).sum(1),   # a channel of zeros: 0
    'gradcam++': lambda A, g: ((g ** 2 / (2 * g ** 2 + A.sum((2, 3), keepdim=True) * g ** 3)).nan_to_num(0, 0, 0) * g.relu()).sum((2, 3))[..., None, None].mul(A).sum(1),
}

def check(spec):
    event(f"{spec['end']} {spec['pool']} {spec['head']}"); event(f"last activation: {spec['stages'][-1][1]}")
    model, x = build(spec)
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        t = trace(model, x)
    fn_last = spec['end'] == 'nchw' and spec['stages'][-1][1] == 'function'   # a function between the last module and the pooling
    if spec['end'] == 'tokens' and spec['pool'] == 'cls':               # only the class token reaches the head: a layer before the last mixing
        lay = t.layouts[(t.layer, t.call)]
        assert isinstance(lay, Tokens) and lay.prefix == 1 or lay == ChannelsFirst(), (lay, spec)   # a map: the tokens after the class token, or the patches
        c, = capture(model, x, None, [None], grads=True)
        assert c.grad.abs().sum() > 0 and n_hooks(model) == 0, spec
        return
    c, = capture(model, x, None, [None], grads=True)
    assert n_hooks(model) == 0
    if fn_last:                                                          # no module outputs what the head pools: the trace says so
        assert t.unseen and any('no module outputs the feature map the head pools' in str(w.message) for w in ws), spec
        assert t.cam, spec
        return
    assert not t.unseen and not ws, (spec, t.unseen, [str(w.message) for w in ws])
    seen, g, out = reference(model, x, c.target)
    assert torch.equal(c.raw, seen), spec                              # the default layer's output *is* the tensor the head pools
    A, G = to_map(seen, spec), to_map(g, spec)
    torch.testing.assert_close(c.act, A, rtol=0, atol=0)
    torch.testing.assert_close(c.grad, G, rtol=1e-9, atol=1e-12)
    affine_head = spec['head'] in ('linear', 'bn1d', 'dropout')
    cam_ok = affine_head and spec['pool'] in CAM_POOLS
    m, why = pick_method(model, x)
    assert (m.name == 'cam') == cam_ok, (spec, m.name, why, t.cam)
    if cam_ok:                                                           # CAM by hand: the head's affine map folded, applied cell by cell
        with torch.no_grad():
            k = A.shape[1]
            W = torch.stack([model.fc.weight.new_zeros(k).index_fill_(0, torch.tensor([j]), 1.) for j in range(k)])
            lin = lambda v: model.fc(model.hbn(v) if spec['head'] == 'bn1d' else v)
            b = lin(torch.zeros(1, k, dtype=A.dtype))[0]
            Wc = (lin(W) - b).T                                          # classes × k
            torch.testing.assert_close(A.mean((2, 3)) @ Wc.T + b, out, rtol=1e-9, atol=1e-9)   # the CAM identity holds
            want = torch.einsum('bk,bkij->bij', Wc[c.target], A)
        torch.testing.assert_close(class_maps(model, x), want, rtol=1e-9, atol=1e-9)
    for name, f in HAND.items():
        torch.testing.assert_close(class_maps(model, x, method=name), f(A, G), rtol=1e-7, atol=1e-9, msg=lambda s: f'{name}: {s} {spec}')
    assert n_hooks(model) == 0

@settings(max_examples=N_EXAMPLES, deadline=None, derandomize=SEEDED, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_fuzz_trace(spec): check(spec)
