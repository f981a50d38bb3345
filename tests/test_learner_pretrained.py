"Pretrained weights, offline: `cam_learner` finds them in torch's (or Hugging Face's) cache and then does what fastai does"
from pathlib import Path
import pytest, torch
from torch import nn
from torchvision.models import resnet18, ResNet18_Weights
import numpy as np
from fastai.callback.core import Callback
from fastai.callback.schedule import ParamScheduler
from fastai.data.transforms import Normalize
from fastai.vision.core import imagenet_stats
import fastcam.learner as fl
from fastcam.learner import cam_learner
from fastcam.data import pets_dls

@pytest.fixture
def dls(tmp_path): return pets_dls(n=40, size=64, path=tmp_path/'pets', bs=16, num_workers=0)

@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    "A fresh, empty torch cache; any question to the network fails the test"
    monkeypatch.setenv('TORCH_HOME', str(tmp_path/'torch'))
    def ask(url, *a, **k): raise AssertionError(f'cam_learner asked the network for {url}')
    monkeypatch.setattr(fl, 'url_reachable', ask)

class Phases(Callback):
    "Per fit: its epochs, each group's peak lr in its one-cycle schedule, which parameters train in each epoch, conv1's weights at its end"
    def before_fit(self):
        lr = next(cb for cb in self.learn.cbs if isinstance(cb, ParamScheduler)).scheds['lr']
        peak = np.max([lr(pos) for pos in np.linspace(0, 1, 101)], axis=0)       # fine_tune's peaks are at pos 0.99 and 0.3
        self.fits = getattr(self, 'fits', []) + [dict(n=self.n_epoch, lrs=list(peak), grad=[])]
    def before_epoch(self): self.fits[-1]['grad'].append([n for n, p in self.learn.model.named_parameters() if p.requires_grad])
    def after_fit(self): self.fits[-1]['conv1'] = self.learn.model[0][0].weight.detach().clone()

def _normalize(dls): return [t for t in dls.after_batch.fs if isinstance(t, Normalize)]

def _frozen_by_fastai(model):
    "What fastai's `freeze` leaves trainable: the head, and the body's BatchNorm layers (`train_bn=True`)"
    body, head = model
    return ([f'0.{n}.{k}' for n, m in body.named_modules() if isinstance(m, nn.BatchNorm2d) for k, _ in m.named_parameters()]
            + [f'1.{n}' for n, _ in head.named_parameters()])

def test_torchvision_weights_from_torch_cache(dls):
    f = Path(torch.hub.get_dir())/'checkpoints'/ResNet18_Weights.DEFAULT.url.rsplit('/', 1)[-1]   # where torch's hub caches them
    f.parent.mkdir(parents=True)
    torch.manual_seed(0)
    sd = resnet18(weights=None).state_dict()
    torch.save(sd, f)
    learn = cam_learner(dls, resnet18, bf16=False, cbs=Phases())
    assert learn.pretrained
    body, head = learn.model
    kids = [n for n, _ in resnet18().named_children()]                         # conv1 bn1 relu maxpool layer1 … fc
    for k, v in body.state_dict().items():
        i, rest = k.split('.', 1)
        assert torch.equal(v, sd[f'{kids[int(i)]}.{rest}']), k
    (norm,) = _normalize(dls)                                                  # fastai's `_add_norm`: ImageNet statistics
    torch.testing.assert_close(norm.mean.flatten().cpu(), torch.tensor(imagenet_stats[0]))
    torch.testing.assert_close(norm.std.flatten().cpu(), torch.tensor(imagenet_stats[1]))
    frozen = _frozen_by_fastai(learn.model)
    assert [n for n, p in learn.model.named_parameters() if p.requires_grad] == sorted(frozen, key=[n for n, _ in learn.model.named_parameters()].index)
    assert len(learn.opt.param_lists) == 3                                     # resnet's split: stem…layer2, layer3, head

    with learn.no_bar(), learn.no_logging(): learn.fine_tune(1)               # fastai's: 1 epoch frozen at 2e-3, then all at 1e-3
    first, second = learn.phases.fits
    assert (first['n'], second['n']) == (1, 1)
    assert first['lrs'] == pytest.approx([2e-4, 2e-4, 2e-3]) and second['lrs'] == pytest.approx([1e-5, 1e-4, 1e-3])
    assert set(first['grad'][0]) == set(frozen)
    assert second['grad'][0] == [n for n, _ in learn.model.named_parameters()]
    assert torch.equal(first['conv1'], sd['conv1.weight'])                    # frozen: the body's convolutions did not move
    assert not torch.equal(second['conv1'], sd['conv1.weight'])               # unfrozen: they trained

@pytest.mark.parametrize('cache', ['huggingface', 'torch'])
def test_timm_weights_from_cache(dls, cache, tmp_path, monkeypatch):
    timm = pytest.importorskip('timm')
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(tmp_path/'hf'))
    cfg = timm.models.get_pretrained_cfg('resnet18')
    if cache == 'huggingface':                                                 # the layout `hf_hub_download` leaves
        repo, rev = tmp_path/'hf'/f"models--{cfg.hf_hub_id.replace('/', '--')}", '0' * 40
        (repo/'refs').mkdir(parents=True); (repo/'refs'/'main').write_text(rev)
        f = repo/'snapshots'/rev/'pytorch_model.bin'
    else: f = Path(torch.hub.get_dir())/'checkpoints'/cfg.url.rsplit('/', 1)[-1]
    f.parent.mkdir(parents=True)
    torch.manual_seed(0)
    sd = timm.create_model('resnet18').state_dict()
    torch.save(sd, f)
    learn = cam_learner(dls, 'resnet18', bf16=False)
    assert learn.pretrained
    body, head = learn.model
    assert type(body).__name__ == 'TimmBody'
    assert len(body.model.state_dict()) > 0
    for k, v in body.model.state_dict().items(): assert torch.equal(v, sd[k]), k
    (norm,) = _normalize(dls)                                                  # fastai's `_timm_norm`: the weights' statistics
    torch.testing.assert_close(norm.mean.flatten().cpu(), torch.tensor(cfg.mean))
    assert {n for n, p in learn.model.named_parameters() if p.requires_grad} == set(_frozen_by_fastai(learn.model))
    assert len(learn.opt.param_lists) == 2                                     # fastai's `default_split`: body, head
