# %% [code] ad1cd09d
#| default_exp learner
# %% [markdown] 37176b74
# A CAM-ready learner

> `cam_learner`: `vision_learner` (torchvision or timm archs) with a GAP → Linear head, a `cut` that works, and training that works from scratch; `learn.cam` and `learn.gradcam`
# %% [code] 7a85a6de
#| hide
from nbdev.showdoc import *
from fastcore.test import *
# %% [code] 236b8a18
#| export
from __future__ import annotations
import warnings, functools, difflib, re
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse
import torch
from torch import nn, Tensor
from torch.utils.data import DataLoader
import torchvision
from fastcore.basics import patch, ifnone, store_attr, camel2snake
from fastcore.foundation import L
from fastcore.meta import delegates
from fastai.layers import Flatten
from fastai.torch_core import apply_init, trainable_params
from fastai.data.transforms import get_c
from fastai.callback.hook import model_sizes, num_features_model
import pandas as pd
from filelock import FileLock
import fastai.callback.schedule                                   # patches `fit_one_cycle` onto `Learner`
from fastai.torch_core import set_seed
from fastai.metrics import error_rate
from fastai.data.external import fastai_path
from fastai.learner import Learner
from fastai.vision.learner import model_meta, _default_meta, create_body, _add_norm, _timm_norm, vision_learner, TimmBody
from fastcam.methods import cam_maps
from fastcam.cam import gradcam_maps
from fastcam.data import url_reachable, pets_dls
from fastcam.files import write_atomic
# %% [markdown] bc09d593
## The head

CAM needs the head to be global average pooling followed by one Linear layer: then each class's logit is the
mean of its map plus a bias, and the map is the einsum of the Linear weights with the body's features.
fastai's default head (concat pooling, two Linear layers) is not that (see `fastcam.cam`).
# %% [code] b8e87f77
#| export
def cam_head(nf:int, # channels of the body's features
             n_out:int, # classes
             ps:float=0., # dropout before the Linear layer (it leaves CAM exact)
            )->nn.Sequential:
    "A CAM-ready head: global average pooling → (dropout) → Linear"
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), Flatten(), *([nn.Dropout(ps)] if ps else []), nn.Linear(nf, n_out))
# %% [code] 94afa04a
from fastcam.trace import cam_weights
from torchvision.models import resnet18, resnet34
m = nn.Sequential(nn.Sequential(*list(resnet18(weights=None).children())[:-2]), cam_head(512, 2, ps=.25)).eval()
x = torch.randn(2, 3, 64, 64)
test_close(cam_maps(m, x).mean((2, 3)) + cam_weights(m)[1], m(x), eps=1e-4)
# %% [markdown] 0619e448
## Pretrained weights, or not

`vision_learner` downloads ImageNet weights the first time, and fails (or waits) without a network. `cam_learner`
uses them when they are in torch's cache or the server answers; otherwise it says so and starts from random
weights.
# %% [code] 9784ea09
#| export
def _cached(url): return (Path(torch.hub.get_dir())/'checkpoints'/url.rsplit('/', 1)[-1]).exists()

def _model(arch, pretrained:bool, weights=None)->tuple: # (model, whether its weights are pretrained)
    "`arch` with `weights`, or with its default ImageNet weights when they are cached or downloadable, else random ones"
    try: enum = torchvision.models.get_model_weights(arch)
    except (ValueError, KeyError, TypeError, AttributeError): return arch(pretrained=pretrained), pretrained  # fastai's convention
    if weights is None and pretrained:
        w = enum.DEFAULT
        if _cached(w.url) or url_reachable(w.url): weights = w
        else: warnings.warn(f"no pretrained weights for {arch.__name__}: they are not in torch's cache and {urlparse(w.url).hostname} "
                            "can't be reached, so the model starts from random weights (and `fine_tune` trains all of it)")
    return arch(weights=weights), weights is not None
# %% [code] 860c01ab
test_eq(_model(resnet34, False)[1], False)
class Tiny(nn.Sequential):
    def __init__(self, pretrained=False): super().__init__(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1)); self.pretrained = pretrained
test_eq(_model(Tiny, True)[0].pretrained, True)                     # not a torchvision builder: called the fastai way
@contextmanager
def offline():
    "As on a machine without network or cached weights: the checks defined in this notebook say no, until the block ends"
    fakes = dict(url_reachable=lambda *a, **k: False, _cached=lambda *a, **k: False, _timm_cached=lambda *a, **k: None)
    saved = {k: globals()[k] for k in fakes if k in globals()}
    globals().update({k: fakes[k] for k in saved})
    try: yield
    finally: globals().update(saved)
with offline(), warnings.catch_warnings(record=True) as w:
    warnings.simplefilter('always')
    model, pre = _model(resnet34, True)
test_eq(pre, False)
test_eq(len(w), 1)
test_eq('no pretrained weights for resnet34' in str(w[0].message), True)
# %% [markdown] 7d0fc53b
## The body

`vision_learner(cut=...)` is silently ignored by fastai 2.8.12: the argument never reaches `create_vision_model`.
`cam_learner` builds the body itself with `create_body`, so `cut` works.

A ResNet divides the image side by 32: at 96 px its last group makes 3×3 maps, too coarse to say where anything
is (CAM then does worse than pointing at the image centre). When no `cut` is given, `cam_learner` drops the
body's last groups while their maps would be smaller than `min_map` cells a side (checked on a batch of `dls`):
on the 96 px bundled pets a resnet keeps its first three groups (6×6 maps); at the chapter's 224 px it is whole
(7×7).
# %% [code] 9dc092f9
#| export
def _body(model, n_in, pretrained, cut, min_map, size, default_cut=None):
    "`create_body` with `cut`; without one, the arch's, less the last groups while their maps would be under `min_map` a side"
    body = create_body(model, n_in, pretrained, ifnone(cut, default_cut))
    if cut is None and min_map:
        sides = [min(s[-2:]) for s in model_sizes(body, size=size)]
        keep = next((i + 1 for i in reversed(range(len(sides))) if sides[i] >= min_map), 1)
        body = body[:keep]
    return body
# %% [code] d2fcf354
b = _body(resnet34(weights=None), 3, False, None, 4, (96, 96))
test_eq(len(b), 7); test_eq(b[-1], b[6])                                    # conv1 bn1 relu maxpool layer1 layer2 layer3
test_eq(len(_body(resnet34(weights=None), 3, False, None, 4, (224, 224))), 8)
test_eq(len(_body(resnet34(weights=None), 3, False, -4, 4, (96, 96))), 6)    # an explicit cut is obeyed
test_eq(len(_body(resnet34(weights=None), 3, False, None, None, (96, 96))), 8)
# %% [markdown] 2c9d3bcc
## timm architectures

Like `vision_learner`, `cam_learner` takes a timm architecture by name (`cam_learner(dls, 'convnext_tiny')`); timm is
an optional dependency, imported only then. The model is created without its classifier and wrapped in fastai's
`TimmBody`, so `learn.model` is `nn.Sequential(TimmBody, head)` as fastai users know it, and the head is fastcam's
GAP → Linear.

Pretrained weights are used as they are for torchvision archs: when they are in the Hugging Face cache or the torch
hub cache they are loaded from that file (no network call, so no retries); otherwise timm downloads them if its server
can be reached; otherwise a warning says so and the model starts from random weights. (A `'hf-hub:…'` name is passed
to timm as it is: timm then decides where its weights come from.)
# %% [code] 8e99de86
#| export
def _timm():
    "The `timm` module, imported only when a timm architecture is asked for (it is an optional dependency)"
    try: import timm
    except ModuleNotFoundError: raise ModuleNotFoundError("a timm architecture (`arch` given by name) needs timm: `pip install timm`") from None
    return timm

def _timm_cached(cfg)->str|None: # the local file that holds `cfg`'s weights, or None
    "Where timm's pretrained weights described by `cfg` are in the Hugging Face or torch hub cache, if they are"
    from huggingface_hub import try_to_load_from_cache
    if cfg.hf_hub_id:
        for name in [cfg.hf_hub_filename] if cfg.hf_hub_filename else ['model.safetensors', 'pytorch_model.bin']:
            if isinstance(f := try_to_load_from_cache(cfg.hf_hub_id, name), str): return f
    if cfg.url and _cached(cfg.url): return str(Path(torch.hub.get_dir())/'checkpoints'/cfg.url.rsplit('/', 1)[-1])
# %% [code] 6a528cf7
#| export
def _timm_model(arch:str, pretrained:bool, n_in:int=3, weights=None)->tuple: # (model without classifier, whether its weights are pretrained)
    "timm's `arch` with its ImageNet weights when they are cached or downloadable, else random ones"
    timm = _timm()
    if weights is not None: raise ValueError("`weights` is for torchvision archs: a timm arch names its weights, e.g. 'convnext_tiny.fb_in22k'")
    if ':' not in arch and not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=3)
        raise ValueError(f"unknown timm architecture {arch!r}: " + (f"did you mean {', '.join(map(repr, close))}?" if close else "see `timm.list_models()`"))
    cfg, overlay = timm.models.get_pretrained_cfg(arch) if pretrained and ':' not in arch else None, None
    if cfg is not None:
        from huggingface_hub.constants import ENDPOINT
        host = ENDPOINT if cfg.hf_hub_id else cfg.url
        if f := _timm_cached(cfg): overlay = dict(file=f)                            # read from disk: no network call
        elif not (host and url_reachable(host)):
            warnings.warn(f"no pretrained weights for {arch}: they are not in the Hugging Face or torch cache and "
                          f"{urlparse(host).hostname or 'timm'} can't be reached, so the model starts from random weights (and `fine_tune` trains all of it)")
            pretrained = False
    return timm.create_model(arch, pretrained=pretrained, num_classes=0, in_chans=n_in, pretrained_cfg_overlay=overlay), pretrained
# %% [code] 8bce3065
from unittest import mock
import sys
test_eq(type(_timm_model('regnetx_002', False)[0]).__name__, 'RegNet')
with offline(), warnings.catch_warnings(record=True) as w:
    warnings.simplefilter('always')
    model, pre = _timm_model('regnetx_002', True)
test_eq(pre, False)
test_eq([str(m.message)[:47] for m in w], ['no pretrained weights for regnetx_002: they are'])
test_fail(lambda: _timm_model('convnxt_tiny', False), contains="unknown timm architecture 'convnxt_tiny': did you mean 'convnext_tiny'")
test_fail(lambda: _timm_model('resnet18', True, weights='x'), contains='`weights` is for torchvision archs')
with mock.patch.dict(sys.modules, timm=None):                                              # timm not installed
    test_fail(lambda: _timm_model('resnet18', False), contains='needs timm: `pip install timm`')
# %% [markdown] 805b5bce
`min_map` works as for torchvision archs, through timm's own `prune_intermediate_layers`: the feature stages are
measured on one input of the data's size (`forward_intermediates`), and the stages after the last one whose maps are
at least `min_map` a side are removed from the model (with what only follows them, such as EfficientNet's
`conv_head`). For a timm arch, `cut` is an index into those feature stages: the last one to keep (`-2` drops the last
stage). A timm too old to have `prune_intermediate_layers` keeps the whole body, and a warning says when its maps are
then under `min_map`. A model whose body gives no feature map (fastai's `TimmBody` then returns pooled features, as
for ViTs) can't have a CAM: `cam_learner` says so.
# %% [code] 3a0b646b
#| export
def _timm_prune(model, arch, n_in, cut, min_map, size):
    "Remove `model`'s feature stages after stage `cut`; without one, after the last stage whose maps are at least `min_map` a side"
    if cut is not None and (not isinstance(cut, int) or isinstance(cut, bool)):
        raise TypeError(f"for a timm arch, `cut` is an int, the last feature stage to keep (-2 drops the last one), not {type(cut).__name__}")
    if not callable(getattr(model, 'prune_intermediate_layers', None)):
        if cut is not None: raise ValueError(f"`cut` needs timm's `prune_intermediate_layers`, which {type(model).__name__} lacks in this timm: upgrade timm or leave `cut` out")
        return
    if cut is None and not min_map: return
    with torch.no_grad(): feats = model.eval().forward_intermediates(torch.zeros(1, n_in, *size), intermediates_only=True)
    model.train()
    n = len(feats)
    if cut is not None and not -n <= cut < n: raise ValueError(f"`cut` {cut} is out of range: timm's {arch!r} has {n} feature stages")
    keep = cut % n if cut is not None else next((i for i in reversed(range(n)) if min(feats[i].shape[-2:]) >= min_map), 0)
    if keep == n - 1: return
    model.prune_intermediate_layers([keep])
    model.num_features = feats[keep].shape[1]                      # the channels the features now have, whatever timm's version set
    if len(model.feature_info) == n: model.feature_info = model.feature_info[:keep + 1]   # timm leaves the pruned stages listed
# %% [code] f542addc
#| export
def _timm_body(model, arch, n_in, pretrained, cut, min_map, size)->TimmBody:
    "fastai's `TimmBody` of `model` up to feature stage `cut`; without one, less the last stages while their maps would be under `min_map` a side"
    if model.default_cfg.get('pool_size') is None:                 # fastai's `TimmBody` then gives pooled features
        raise ValueError(f"timm's {arch!r} gives no feature map for a GAP → Linear head (as a ViT): CAM needs one; "
                         "use a convolutional arch, or `vision_learner` and `gradcam_maps`")
    _timm_prune(model, arch, n_in, cut, min_map, size)
    body = TimmBody(model, pretrained, None, n_in)
    with torch.no_grad(): out = body.eval()(torch.zeros(1, n_in, *size))
    body.train()
    if out.ndim != 4 or out.shape[1] != model.num_features:
        raise ValueError(f"timm's {arch!r} gives features of shape {tuple(out.shape)}, not (bs, {model.num_features}, h, w): "
                         "CAM needs channels first; use `vision_learner` and `gradcam_maps`")
    if min_map and not callable(getattr(model, 'prune_intermediate_layers', None)) and min(out.shape[-2:]) < min_map:
        warnings.warn(f"{type(model).__name__} has no `prune_intermediate_layers` in this timm, so its last stages stay: its maps are "
                      f"{out.shape[-2]}×{out.shape[-1]}, under `min_map`={min_map}; upgrade timm or use larger images")
    return body
# %% [code] 8824ce40
b = _timm_body(_timm_model('convnext_tiny', False)[0], 'convnext_tiny', 3, False, None, 4, (64, 64))
test_eq(type(b), TimmBody)
test_eq((len(b.model.stages), len(b.model.feature_info)), (3, 3))       # 64 px: the last stage (2×2) is dropped
test_eq(b(torch.zeros(1, 3, 64, 64)).shape, (1, 384, 4, 4))
test_eq(b.training, True)
b = _timm_body(_timm_model('efficientnet_b0', False)[0], 'efficientnet_b0', 3, False, None, 4, (64, 64))
test_eq(b(torch.zeros(1, 3, 64, 64)).shape, (1, 112, 4, 4))              # the last stage and `conv_head` are gone
test_eq(type(b.model.conv_head), nn.Identity)
b = _timm_body(_timm_model('efficientnet_b0', False)[0], 'efficientnet_b0', 3, False, None, 4, (128, 128))
test_eq(b(torch.zeros(1, 3, 128, 128)).shape, (1, 1280, 4, 4))           # 128 px: whole, `conv_head` included
for cut, shape in ((-1, (1, 368, 2, 2)), (-2, (1, 152, 4, 4)), (2, (1, 56, 8, 8))):        # an explicit cut is obeyed
    b = _timm_body(_timm_model('regnetx_002', False)[0], 'regnetx_002', 3, False, cut, 4, (64, 64))
    test_eq(b(torch.zeros(1, 3, 64, 64)).shape, shape)
b = _timm_body(_timm_model('regnetx_002', False)[0], 'regnetx_002', 3, False, None, None, (64, 64))
test_eq(b(torch.zeros(1, 3, 64, 64)).shape, (1, 368, 2, 2))              # min_map=None: whole
# %% [code] cc1e5ffd
#| hide
m = _timm_model('regnetx_002', False)[0]
test_fail(lambda: _timm_body(m, 'regnetx_002', 3, False, 5, 4, (64, 64)), contains="`cut` 5 is out of range: timm's 'regnetx_002' has 5 feature stages")
test_fail(lambda: _timm_body(m, 'regnetx_002', 3, False, lambda m: m, 4, (64, 64)), contains='for a timm arch, `cut` is an int')
test_fail(lambda: _timm_body(_timm_model('vit_tiny_patch16_224', False)[0], 'vit_tiny_patch16_224', 3, False, None, 4, (64, 64)),
          contains="timm's 'vit_tiny_patch16_224' gives no feature map for a GAP → Linear head")
m.prune_intermediate_layers = None                                        # as in a timm without it
test_fail(lambda: _timm_body(m, 'regnetx_002', 3, False, -2, 4, (64, 64)), contains="`cut` needs timm's `prune_intermediate_layers`")
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter('always')
    b = _timm_body(m, 'regnetx_002', 3, False, None, 4, (64, 64))
test_eq(b(torch.zeros(1, 3, 64, 64)).shape, (1, 368, 2, 2))
test_eq(len(w), 1)
test_eq(str(w[0].message).startswith("RegNet has no `prune_intermediate_layers` in this timm, so its last stages stay: its maps are 2×2"), True)
# %% [markdown] 971b8265
## Training from scratch

`fine_tune` freezes the body for an epoch and then trains it with learning rates 100 times smaller for the first
layers: right for pretrained weights, but a random body then barely learns (measured here: ~48 % error on the
bundled pets). A from-scratch `cam_learner` has a single parameter group, so nothing is frozen, and its
`fine_tune(epochs)` is one one-cycle schedule over all `freeze_epochs + epochs` epochs at `base_lr`.

A random body also needs more epochs than a pretrained one. On the bundled pets (96 px, 1600 training images) a
resnet34 from scratch had 7–40 % error after two epochs (over seeds and learning rates), 8 % after three, 2–6 %
after four and 1 % after five. So from scratch `freeze_epochs` defaults to 4, not 1: the README's `fine_tune(1)`
is five epochs over the whole model, about two and a half minutes on two CPU cores (in bfloat16, below).

## bfloat16 on the CPU

Four epochs of that resnet34 took 168 s on two CPU cores in float32, so five would take about 210 s. A CPU that computes bfloat16 natively (AVX512-BF16
or AMX, as this project's machines do) runs a training step of that resnet34 1.7 times faster under
`torch.autocast` (`bench/bench_train.py` prints the ratio). fastai's `to_bf16()` only autocasts on CUDA, so
`CAMLearner` does it on the CPU itself, for the forward pass of training batches only: the weights, their
gradients and the loss stay float32, and validation, `get_preds` and every map run in float32, so CAM stays
exact. `cam_learner(bf16=None)` turns it on where the CPU that trains has native bfloat16 (decided when it trains,
so an exported learner decides again on the machine that loads it); `learn.bf16 = False` turns it off.
On a GPU it does nothing: use fastai's `to_fp16()`.
# %% [code] 9fe95abe
#| export
@functools.cache
def _native_bf16()->bool:
    "Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), so that autocast speeds training up"
    try: return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    except AttributeError: return False                                    # a torch without these checks: assume not

@contextmanager
def _bf16_forward(model:nn.Module):
    "Forward passes of `model` in CPU bfloat16 autocast, each output back in float32; nothing left behind, even on an error"
    entered = []
    def pre(m, args): entered.append(torch.autocast('cpu', dtype=torch.bfloat16)); entered[-1].__enter__()
    def post(m, args, out): entered.pop().__exit__(None, None, None); return out.float() if isinstance(out, Tensor) else out
    hooks = [model.register_forward_pre_hook(pre), model.register_forward_hook(post)]
    try: yield
    finally:
        for h in hooks: h.remove()
        while entered: entered.pop().__exit__(None, None, None)
# %% [code] 11cd9ca9
#| export
class CAMLearner(Learner):
    "A `Learner` that trains every layer on one schedule when the model starts from random weights, in bfloat16 on a CPU that has it"
    bf16 = None                                                   # True, False, or None: where the CPU has native bfloat16
    @property
    def trains_bf16(self)->bool: return _native_bf16() if self.bf16 is None else bool(self.bf16)
    @delegates(Learner.fit_one_cycle)
    def fine_tune(self, epochs, base_lr=2e-3, freeze_epochs=None, lr_mult=100, pct_start=0.3, div=5.0, **kwargs):
        "fastai's `fine_tune` on pretrained weights; from scratch, one `fit_one_cycle` of `freeze_epochs` (default 4) + `epochs` over the whole model"
        if getattr(self, 'pretrained', True):
            return super().fine_tune(epochs, base_lr, ifnone(freeze_epochs, 1), lr_mult, pct_start, div, **kwargs)
        self.fit_one_cycle(ifnone(freeze_epochs, 4) + epochs, base_lr, **kwargs)

    def _do_one_batch(self):
        if not (self.trains_bf16 and getattr(self, 'training', False) and self.xb[0].device.type == 'cpu'): return super()._do_one_batch()
        with _bf16_forward(self.model): super()._do_one_batch()
# %% [code] fa9b1db6
#| export
def _cb_name(cb): return camel2snake(re.sub('Callback$', '', cb.__name__)) if isinstance(cb, type) else cb.name   # fastai's attribute name
# %% [code] 5b0d7c31
#| export
def _cam_body(dls, arch, meta, normalize, pretrained, weights, cut, min_map, n_in)->tuple: # (model, body, whether pretrained)
    "`cam_learner`'s body: a torchvision arch through `create_body`, a timm one through `TimmBody`; `dls` normalised to its weights"
    size = dls.one_batch()[0].shape[-2:]
    if isinstance(arch, str):
        model, pretrained = _timm_model(arch, pretrained, n_in, weights)
        if normalize: _timm_norm(dls, model.pretrained_cfg, pretrained, n_in)
        return model, _timm_body(model, arch, n_in, pretrained, cut, min_map, size), pretrained
    model, pretrained = _model(arch, pretrained, weights)
    if normalize: _add_norm(dls, meta, pretrained, n_in)
    return model, _body(model, n_in, pretrained, cut, min_map, size, meta['cut']), pretrained
# %% [code] d5b207e3
#| export
@delegates(vision_learner, but=['cut', 'custom_head', 'concat_pool', 'pool', 'lin_ftrs', 'first_bn', 'bn_final', 'lin_first', 'y_range'])
def cam_learner(dls, # the data, e.g. `pets_dls()`
                arch, # a torchvision-style model function, e.g. `resnet34`, or a timm architecture's name, e.g. 'convnext_tiny'
                normalize:bool=True, # add ImageNet normalisation when the weights are pretrained
                n_out:int=None, # classes: default `dls.c`
                pretrained:bool=True, # use ImageNet weights when they can be had (cached or downloadable)
                weights=None, # torchvision weights to use (a timm arch names its weights: 'convnext_tiny.fb_in22k')
                cut=None, # where the body ends (int or function), as in `create_body`; timm: the last feature stage to keep
                min_map:int=4, # without `cut`: drop the last groups (timm: stages) while their maps would be under this side
                ps:float=0., # dropout before the head's Linear layer
                init=nn.init.kaiming_normal_, # initialisation of the head
                splitter=None, # parameter groups: default the arch's when pretrained, one group otherwise
                cbs=None, # callbacks; a `TopLossCAM` is added unless one is given
                n_in:int=3, # input channels
                bf16:bool=None, # train in bfloat16 autocast on the CPU; None: where the CPU computes bfloat16 natively
                **kwargs)->CAMLearner:
    "A vision `Learner` whose head is GAP → Linear (so `cam_maps` is exact), with the `TopLossCAM` callback"
    from fastcam.callback import TopLossCAM                       # the callback is built on this module
    n_out = ifnone(n_out, get_c(dls))
    if not n_out: raise ValueError("`n_out` could not be inferred from `dls`: pass `n_out=` (the number of classes)")
    meta = model_meta.get(arch, _default_meta)
    model, body, pretrained = _cam_body(dls, arch, meta, normalize, pretrained, weights, cut, min_map, n_in)
    head = cam_head(model.num_features if isinstance(body, TimmBody) else num_features_model(body), n_out, ps)
    apply_init(head, init)
    cbs = L(cbs)
    if 'top_loss_cam' not in map(_cb_name, cbs): cbs.append(TopLossCAM())   # one only: fastai names it `learn.top_loss_cam`
    splitter = ifnone(splitter, meta['split'] if pretrained else trainable_params)
    learn = CAMLearner(dls, nn.Sequential(body, head), splitter=splitter, cbs=cbs, **kwargs)
    if pretrained: learn.freeze()
    store_attr('arch,normalize,n_out,pretrained,bf16', self=learn)
    return learn
# %% [markdown] 47cab733
On the bundled pets (a small subset here, to stay fast), from scratch:
# %% [code] ad57be2c
import tempfile
from fastcore.basics import first
from fastcam.data import pets_dls
tmp = tempfile.TemporaryDirectory()
dls = pets_dls(n=160, size=64, path=tmp.name, bs=16, num_workers=0)
learn = cam_learner(dls, resnet18, pretrained=False)
body, head = learn.model
test_eq([type(m) for m in head], [nn.AdaptiveAvgPool2d, Flatten, nn.Linear])
test_eq(head[-1].weight.shape, (2, 256))                            # 64 px: layer4 (2×2) dropped, layer3 gives 4×4 maps
learn.create_opt(); test_eq(len(learn.opt.param_lists), 1)                # one parameter group: nothing to freeze
test_eq(learn.pretrained, False)
test_eq(type(learn.top_loss_cam).__name__, 'TopLossCAM')
learn = cam_learner(dls, resnet18, pretrained=False, cut=-4)          # a cut that works
test_eq(learn.model[1][-1].weight.shape, (2, 128))
head
# %% [markdown] cb8a9e39
`fine_tune` on a from-scratch `cam_learner` is one one-cycle schedule, with nothing frozen:
# %% [code] 1f59efdc
from fastai.callback.core import Callback, CancelFitException
class Spy(Callback):
    "Record each fit's epochs and which parameters train, then cancel it"
    def before_fit(self):
        self.fits = getattr(self, 'fits', []) + [(self.n_epoch, [p.requires_grad for p in self.learn.model.parameters()])]
        raise CancelFitException
learn = cam_learner(dls, resnet18, pretrained=False, cbs=Spy())
with learn.no_bar(), learn.no_logging(): learn.fine_tune(1)
test_eq(len(learn.spy.fits), 1); test_eq(learn.spy.fits[0][0], 5)          # 4 + 1 epochs
test_eq(all(learn.spy.fits[0][1]), True)
with learn.no_bar(), learn.no_logging(): learn.fine_tune(1, freeze_epochs=1)
test_eq(learn.spy.fits[1][0], 2)
# %% [markdown] b5cedb2f
A timm architecture, by name: the body is fastai's `TimmBody` and the head GAP → Linear, so the CAM identity holds;
from scratch, `fine_tune` trains all of it, as for torchvision archs:
# %% [code] e2f6eb10
xb, yb = dls.one_batch()
for arch, nf in (('resnet18', 256), ('convnext_tiny', 384), ('efficientnet_b0', 112), ('regnetx_002', 152)):
    learn = cam_learner(dls, arch, pretrained=False, cbs=Spy())
    body, head = learn.model
    test_eq((type(learn.model), type(body)), (nn.Sequential, TimmBody))
    test_eq([type(m) for m in head], [nn.AdaptiveAvgPool2d, Flatten, nn.Linear])
    test_eq(head[-1].weight.shape, (2, nf))                                 # 64 px: the last stage (2×2 maps) is dropped
    maps, logits = cam_maps(learn.model, xb), learn.model.eval()(xb)
    test_eq(maps.shape, (16, 2, 4, 4))
    test_close(maps.mean((2, 3)) + head[-1].bias, logits, eps=1e-4)        # the CAM identity
    with learn.no_bar(), learn.no_logging(): learn.fine_tune(1)
    test_eq(learn.spy.fits, [(5, [True] * len(list(learn.model.parameters())))])   # one schedule, nothing frozen
# %% [code] c1fb008d
learn = cam_learner(dls, 'regnetx_002', pretrained=False)
before = [p.detach().clone() for p in learn.model.parameters()]
with learn.no_bar(), learn.no_logging(): learn.fine_tune(0, freeze_epochs=1)       # one epoch, for real
test_eq(all(not torch.equal(p0, p) for p0, p in zip(before, learn.model.parameters())), True)   # every parameter trained
with offline(), warnings.catch_warnings(record=True) as w:
    warnings.simplefilter('always')
    learn = cam_learner(dls, 'regnetx_002')
test_eq((learn.pretrained, len(w)), (False, 1))
learn.create_opt(); test_eq(len(learn.opt.param_lists), 1)                # random weights: one group, nothing frozen
test_eq(len(dls.after_batch.fs.filter(lambda t: type(t).__name__ == 'Normalize')), 0)   # and no ImageNet normalisation
# %% [markdown] e17f617f
In bfloat16, the training batches' forward passes compute in bfloat16 and nothing else does: the loss, the weights
and their gradients are float32, validation is float32, and no hook or autocast is left afterwards:
# %% [code] a40590ec
from fastcam.hooks import n_hooks
class Dtypes(Callback):
    "The dtype of the body's output and of the loss, per training and validation batch; the gradients' dtypes"
    def before_fit(self):
        self.seen = set()
        self.h = self.learn.model[0].register_forward_hook(lambda m, i, o: self.seen.add((self.training, 'body', o.dtype)))
    def after_loss(self): self.seen.add((self.training, 'loss', self.loss.dtype))
    def after_backward(self): self.seen |= {(True, 'grad', p.grad.dtype) for p in self.learn.model.parameters()}
    def after_fit(self): self.h.remove()
for bf16, body in ((True, torch.bfloat16), (False, torch.float32)):
    learn = cam_learner(dls, resnet18, pretrained=False, bf16=bf16, cbs=Dtypes())
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    test_eq(learn.dtypes.seen, {(True, 'body', body), (True, 'loss', torch.float32), (True, 'grad', torch.float32),
                                (False, 'body', torch.float32), (False, 'loss', torch.float32)})
    test_eq({p.dtype for p in learn.model.parameters()}, {torch.float32})
    test_eq(n_hooks(learn.model), 0)
learn = cam_learner(dls, resnet18, pretrained=False)
test_eq((learn.bf16, learn.trains_bf16), (None, _native_bf16()))          # by default: what this CPU does natively
# %% [markdown] c2a11248
An error in the middle of a bfloat16 forward pass leaves no autocast and no hook behind:
# %% [code] 2cda046c
class Boom(nn.Module):
    def forward(self, x): raise KeyboardInterrupt
broken = cam_learner(dls, resnet18, pretrained=False, bf16=True)
broken.model[0].append(Boom())
try:
    with broken.no_bar(), broken.no_logging(): broken.fit(1)
except KeyboardInterrupt: pass
else: raise AssertionError('the forward pass should have raised')
test_eq(torch.is_autocast_enabled('cpu'), False)
test_eq(n_hooks(broken.model), 0)
# %% [markdown] e16e418e
## `learn.cam` and `learn.gradcam`

The maps of `fastcam.cam`, on the learner's model, for a batch: a tensor, or the tuple or `DataLoader` that
`dls.test_dl` gives.
# %% [code] cec81711
#| export
def _as_batch(x)->Tensor:
    "The images of `x`: a tensor, a tuple of one (as `first(dl)` gives), or a `DataLoader`'s batches joined"
    if isinstance(x, DataLoader) or hasattr(x, 'one_batch'): return torch.cat([b[0] for b in x])
    if isinstance(x, (tuple, list)) and len(x) and isinstance(x[0], Tensor): return x[0]
    return x

@patch
def cam(self:Learner,
        x, # images: a tensor (bs, 3, h, w), `first(dls.test_dl(...))`, or a `DataLoader`
        layer=None, # only the layer the head pools gives a CAM
       )->Tensor: # (bs, classes, h, w)
    "Class activation maps of every class for `x` (the model's head must be GAP → Linear, as `cam_learner` makes it)"
    return cam_maps(self.model, _as_batch(x), layer)

@patch
def gradcam(self:Learner,
            x, # images: a tensor (bs, 3, h, w), `first(dls.test_dl(...))`, or a `DataLoader`
            target=None, # None (each image's predicted class), an int, or one class per image
            layer=None, # None (the last feature map before the head), an int into the body (-2: the second-last group), a module or a dotted name
           )->Tensor: # (bs, h, w)
    "Grad-CAM maps of `target` at `layer` for `x`"
    return gradcam_maps(self.model, _as_batch(x), target, layer)
# %% [code] f1b21297
files = dls.valid.items[:5]
tdl = dls.test_dl(files, bs=4)
xb, = tdl.one_batch()
maps = learn.cam(first(tdl))
test_eq(maps.shape, (4, 2, 4, 4))
test_close(maps.mean((2, 3)) + learn.model[1][-1].bias, learn.model.eval()(xb), eps=1e-4)     # the CAM identity
test_eq(learn.cam(tdl).shape, (5, 2, 4, 4))
g = learn.gradcam(tdl, target=1)
test_close(g * 16, learn.cam(tdl)[:, 1], eps=1e-4)                                            # Grad-CAM · h·w = CAM
test_eq(learn.gradcam(xb, layer=-2).shape, (4, 8, 8))
test_fail(lambda: learn.cam(xb, layer=-2), contains='CAM is defined only on the features the head pools')
{'cam': tuple(maps.shape), 'gradcam': tuple(g.shape), 'gradcam at -2': tuple(learn.gradcam(xb, layer=-2).shape)}
# %% [markdown] b6ee43f2
## The course's model: trained once

A map is only worth showing from a model that learned. The lessons and the reference notebooks all explain one
model: a resnet18 body (cut at its third group: 6×6 maps at 96 px) with a GAP → Linear head, trained from scratch on
the 2,000 bundled pets with `fit_one_cycle` — the demo's settings, which reach 0.25–0.5 % error on the 400 validation
images. `pets_learner` trains it the first time it is asked for, with every seed set, and keeps its weights and its
epoch table in fastai's models folder under a name made of its settings (and of whether this CPU trained it in
bfloat16, and the torch version); every later call, in any process, loads them. Processes that ask at once wait on a
lock while the first trains, and the weights are written whole (`write_atomic`), so none reads half a file.
# %% [code] 27659089
#| export
def _pets_model_file(name, size, n, epochs, lr, bs, seed, bf16)->Path:
    "Where `pets_learner` keeps the weights trained with these settings"
    return fastai_path('model')/(f'fastcam-pets-{name}-{size}px-n{n}-{epochs}ep-lr{lr:g}-bs{bs}-seed{seed}-'
                                  f'{"bf16" if bf16 else "fp32"}-torch{torch.__version__.split("+")[0]}.pth')

def pets_learner(arch=torchvision.models.resnet18, # the body: a torchvision-style function, or a timm architecture's name
                 size:int=96, # image side in pixels
                 n:int=2000, # images in the bundled set (80 % to train, 20 % to validate)
                 epochs:int=6, # `fit_one_cycle` epochs
                 lr:float=3e-3, # its peak learning rate
                 bs:int=32, # batch size
                 seed:int=0, # for the weights, the batches and the augmentation
                 path=None, # where the learner works (e.g. its saved maps); default the data's folder
                )->CAMLearner: # with `history`: the epoch table of its training
    "A `cam_learner` on the bundled pets, trained from scratch once per setting and cached: the model the lessons explain"
    set_seed(seed, reproducible=True)
    dls = pets_dls(n=n, size=size, bs=bs, num_workers=0)
    learn = cam_learner(dls, arch, pretrained=False, metrics=error_rate, path=path)
    f = _pets_model_file(getattr(arch, '__name__', arch), size, n, epochs, lr, bs, seed, learn.trains_bf16)
    f.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f'{f}.lock'):                                     # one process trains; the others wait, then load
        if not f.exists():
            with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, lr)
            names = [o for o in learn.recorder.metric_names if o not in ('epoch', 'time')]
            hist = dict(epoch=list(range(epochs)), **{k: [float(v[i]) for v in learn.recorder.values] for i, k in enumerate(names)})
            write_atomic(f, lambda p: torch.save(dict(model=learn.model.state_dict(), history=hist), p))
    saved = torch.load(f, weights_only=True)
    learn.model.load_state_dict(saved['model'])
    learn.history = pd.DataFrame(saved['history']).set_index('epoch').round(4)
    return learn
# %% [markdown] c54a8468
The first call trains (about a minute on two cores with bfloat16, three without); this one most likely loads. Its
epoch table says what it learned, and the validation pass says the same of the weights it loaded:
# %% [code] 7c59ae02
pets = pets_learner()
with pets.no_bar(): err = pets.validate()[1]
test_close(err, pets.history.error_rate.iloc[-1], eps=1e-4)                   # the loaded weights are the trained ones
print(f'error rate {err:.2%} on {len(pets.dls.valid_ds)} validation images')
pets.history
# %% [code] 2aa5facd
#| hide
test_eq(err <= .03, True)                                                       # a model worth explaining
f = _pets_model_file('resnet18', 96, 2000, 6, 3e-3, 32, 0, pets.trains_bf16)
test_eq((f.exists(), f.name.startswith('fastcam-pets-resnet18-96px-n2000-6ep-lr0.003-bs32-seed0-')), (True, True))
again = pets_learner()
test_eq([torch.equal(a, b) for a, b in zip(again.model.state_dict().values(), pets.model.state_dict().values())], [True] * len(pets.model.state_dict()))
# %% [code] 773917d7
#| hide
tmp.cleanup()
import nbdev; nbdev.nbdev_export()
