"`from fastcam.all import *` replaces fastai's `Hook` with fastcam's: fastai's hook helpers and fastai-style `Hook` code keep working"
import math, pytest
from fastcam.all import *
from fastcore.test import test_eq as eq, test_close as close
for _n in [n for n in globals() if n.startswith('test')]: del globals()[_n]  # fastcore's test_* helpers are not pytest tests
from fastai.test_utils import synth_learner
import fastai.callback.hook as fastai_hook
import fastcam.hooks

pytestmark = [pytest.mark.filterwarnings('ignore:Using a non-full backward hook:FutureWarning'),  # fastai's `is_forward=False` hooks
              pytest.mark.filterwarnings('ignore:You are shadowing an attribute:UserWarning')]      # fastai's `HookCallback.modules`

def lin_relu_lin():
    torch.manual_seed(0)
    layers = [nn.Linear(5,10), nn.ReLU(), nn.Linear(10,3)]
    return layers, nn.Sequential(*layers), torch.randn(4,5)

def test_all_exports_fastcams_hook():
    assert Hook is fastcam.hooks.Hook and Hook is not fastai_hook.Hook
    assert hook_output is fastai_hook.hook_output and ActivationStats is fastai_hook.ActivationStats

def test_fastai_style_hook_code():
    "Code written for fastai's `Hook` runs on fastcam's, positional arguments included"
    layers, m, x = lin_relu_lin()
    with Hook(layers[2], lambda m,i,o: o.mean(), True, True, False) as h:
        eq(h.stored, None)
        y = m(x)
    close(h.stored, y.mean())
    assert h.removed and n_hooks(m) == 0
    with Hook(layers[2], lambda m,i,o: o, False) as h:   # is_forward=False, positionally
        m(x).pow(2).mean().backward()
    close(h.stored[0], 2*m(x) / 12)

def test_hook_output():
    layers, m, x = lin_relu_lin()
    with hook_output(m) as h:
        y = m(x)
        eq(y, h.stored)
        assert not h.stored.requires_grad
    with hook_output(m, grad=True) as h:
        y = m(x)
        y.pow(2).mean().backward()
        close(2*y / y.numel(), h.stored[0])
    assert n_hooks(m) == 0

def test_hooks_and_hook_outputs():
    layers, m, x = lin_relu_lin()
    with Hooks(layers, lambda m,i,o: o) as h:
        y = m(x)
        eq(h.stored[0], layers[0](x)); eq(h.stored[1], F.relu(layers[0](x))); eq(h.stored[2], y)
    with hook_outputs(layers, grad=True) as h:
        y = m(x)
        y.pow(2).mean().backward()
        g = 2*y / y.numel()
        close(g, h.stored[2][0])
        g = g @ layers[2].weight.data
        close(g, h.stored[1][0])
        close(g * (layers[0](x) > 0).float(), h.stored[0][0])
    assert n_hooks(m) == 0
    eq(model_sizes(nn.Sequential(ConvLayer(3, 16), ConvLayer(16, 32, stride=2))), [[1, 16, 64, 64], [1, 32, 32, 32]])

def test_hook_callback():
    class TstCallback(HookCallback):
        def hook(self, m, i, o): return o
        def after_batch(self): eq(self.hooks.stored[0], self.pred)
    learn = synth_learner(n_trn=5, cbs=TstCallback())
    with learn.no_bar(), learn.no_logging(): learn.fit(1)

    class TstBwdCallback(HookCallback):
        def __init__(self): super().__init__(is_forward=False, cpu=False)
        def hook(self, m, i, o): return o
        def after_batch(self):
            if self.training: close(self.hooks.stored[0][0], 2*(self.pred-self.y)/self.pred.shape[0])
    learn = synth_learner(n_trn=5, cbs=TstBwdCallback())
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    assert n_hooks(learn.model) == 0

def test_activation_stats():
    class TstCallback(HookCallback):
        def hook(self, m, i, o): return o
        def before_fit(self): super().before_fit(); self.means, self.stds = [], []
        def after_batch(self):
            if self.training:
                self.means.append(self.hooks.stored[0].mean().item()); self.stds.append(self.hooks.stored[0].std().item())
    learn = synth_learner(n_trn=5, cbs=[TstCallback(), ActivationStats()])
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    eq(learn.activation_stats.stats.itemgot(0).itemgot('mean'), learn.tst.means)
    eq(learn.activation_stats.stats.itemgot(0).itemgot('std'), learn.tst.stds)
    for n_trn, every in (11, 4), (12, 1):
        learn = synth_learner(n_trn=n_trn, cbs=ActivationStats(every=every))
        with learn.no_bar(), learn.no_logging(): learn.fit(1)
        eq(len(learn.activation_stats.stats), math.ceil(n_trn / every))
        assert n_hooks(learn.model) == 0
