"The headline session, offline, as the README gives it; and the callback when training is interrupted."
import warnings
import pytest
import torch
from fastcam.all import pets_dls, cam_learner, resnet18, resnet34, error_rate, n_hooks, Callback, CancelFitException, CancelValidException, set_seed
from fastcam.callback import load_cams
import fastcam.callback as fcb

def test_headline_session(monkeypatch):
    """pets_dls → cam_learner(resnet34) → fine_tune(1) → show_cam, offline as in CI (no weights to be had, even where they
    could be): trains from scratch (the body to layer2, three epochs, in bfloat16 where the CPU has it) to ≤ 3 % error,
    shows and saves the top losses, and leaves no hook."""
    import fastcam.learner as fl
    monkeypatch.setattr(fl, 'url_reachable', lambda *a, **k: False)
    monkeypatch.setattr(fl, '_cached', lambda *a, **k: False)
    set_seed(0, reproducible=True)
    dls = pets_dls()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        learn = cam_learner(dls, resnet34, metrics=error_rate)
    assert sum(str(o.message).startswith('no pretrained weights for resnet34: ') for o in w) == 1
    assert not learn.pretrained and len(learn.model[0]) == 6 and learn.scratch_epochs == 2   # conv1 bn1 relu maxpool layer1 layer2
    with learn.no_bar(): learn.fine_tune(1)
    with learn.no_bar(): err = learn.validate()[1]
    assert err <= 0.03
    axs = learn.show_cam()
    res = learn.top_loss_cam.result
    assert [ax.get_title() for ax in axs] == res.titles() and len(res) == 9
    assert res.maps.shape[-2:] == (12, 12)
    with learn.no_bar(): _, _, losses = learn.get_preds(with_loss=True)
    assert res.idxs.tolist() == losses.topk(9).indices.tolist()
    saved = load_cams(learn.path/'cams')
    assert torch.equal(saved.maps, res.maps) and saved.items == [str(o) for o in res.items]
    assert n_hooks(learn.model) == 0

@pytest.fixture
def small(tmp_path):
    dls = pets_dls(n=120, size=64, path=tmp_path, bs=16, num_workers=0)
    return cam_learner(dls, resnet18, pretrained=False), tmp_path

class Interrupt(Callback):
    "Raise `exc` after validation batch `at` (the set's 24 images are 2 batches of 16)"
    order = 70
    def __init__(self, exc, at=1): self.exc, self.at = exc, at
    def after_batch(self):
        if not self.training and self.iter == self.at: raise self.exc

@pytest.mark.parametrize('exc', [KeyboardInterrupt, CancelFitException])
def test_interrupted_validation_leaves_nothing(small, exc):
    learn, path = small
    with learn.no_bar(), learn.no_logging():
        if exc is KeyboardInterrupt:
            with pytest.raises(KeyboardInterrupt): learn.fit(1, cbs=Interrupt(exc))
        else: learn.fit(1, cbs=Interrupt(exc))
    assert n_hooks(learn.model) == 0
    assert learn.top_loss_cam.result is None and not (path/'cams').exists()
    with learn.no_bar(), learn.no_logging(): learn.fit(1)           # the next fit works as usual
    assert len(load_cams(path/'cams')) == 9

def test_cancelled_validation_keeps_the_last_whole_pass(small):
    "A validation pass cut short by `CancelValidException` (the fit goes on) is not a result: the last whole pass's stays, on disk too"
    learn, path = small
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    before = learn.top_loss_cam.result
    with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=Interrupt(CancelValidException, at=0))   # 16 of the 24 seen
    assert learn.top_loss_cam.result is before
    assert torch.equal(load_cams(path/'cams').idxs, before.idxs)

def test_callback_leaves_training_as_it_would_be(tmp_path):
    """The callback's look at a batch before training draws no random number: the same seed trains the same weights with it or
    without (the head's dropout draws from torch's generator as it trains, so a draw before training would show)"""
    def weights(keep):
        set_seed(0, reproducible=True)
        learn = cam_learner(pets_dls(n=64, size=32, path=tmp_path, bs=16, num_workers=0), resnet18, pretrained=False, path=tmp_path, ps=0.5)
        if not keep: learn.remove_cb(learn.top_loss_cam)
        with learn.no_bar(), learn.no_logging(): learn.fit(1)
        assert (learn.top_loss_cam.result is not None) if keep else not hasattr(learn, 'top_loss_cam')
        return [p.detach().clone() for p in learn.model.parameters()]
    with_cb, without = weights(True), weights(False)
    assert all(torch.equal(a, b) for a, b in zip(with_cb, without))

def test_failed_save_keeps_the_previous_maps(small, monkeypatch):
    learn, path = small
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    before = load_cams(path/'cams')
    calls = []
    def broken(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3: raise OSError('disk full')
        return fcb.__dict__['_overlay_ok'](*args, **kwargs)
    monkeypatch.setitem(fcb.__dict__, '_overlay_ok', fcb.overlay)
    monkeypatch.setattr(fcb, 'overlay', broken)
    with learn.no_bar(), learn.no_logging(), pytest.raises(OSError, match='disk full'): learn.fit(1)
    after = load_cams(path/'cams')
    assert torch.equal(after.maps, before.maps) and after.items == before.items
    assert [p.name for p in path.iterdir() if p.name.startswith('.cams')] == []   # no half-written folder left

def test_show_cam_error_leaves_model_as_it_was(small):
    "`show_cam` hooks the model after running the validation set: a bad layer there leaves no hook and no gradient"
    learn, _ = small
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    m = learn.model
    for p in m[0][0].parameters(): p.requires_grad_(False)
    state = lambda: ([x.training for x in m.modules()], [p.requires_grad for p in m.parameters()], [None if p.grad is None else p.grad.sum().item() for p in m.parameters()], n_hooks(m))
    before = state()
    with learn.no_bar(), pytest.raises(ValueError, match='`layer` 12 is out of range'): learn.show_cam(method='gradcam', layer=12)
    assert state() == before

def _valid_x(learn):
    return torch.cat([x.as_subclass(torch.Tensor) for x, _ in learn.dls.valid])

@pytest.mark.parametrize('method', ['gradcam++', 'scorecam'])
def test_callback_and_show_cam_take_any_method(small, method):
    "`TopLossCAM(method=...)` keeps that method's maps of its items; `show_cam(method=...)` makes them on demand"
    from fastcam.cam import class_maps, CamOpts
    from fastcam.callback import TopLossCAM
    learn, path = small
    learn.remove_cb(learn.top_loss_cam)
    learn.add_cb(TopLossCAM(k=4, method=method, layer=-2, target='actual'))
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    res, x = learn.top_loss_cam.result, _valid_x(learn)
    assert res.method == method and len(res) == 4
    torch.testing.assert_close(res.maps, class_maps(learn.model, x[res.idxs], res.actual, method, -2).cpu())
    assert load_cams(path/'cams').method == method
    with learn.no_bar(): axs, shown = learn.show_cam(k=3, method='layercam', layer=-2), learn.top_losses_cam(3, 'layercam', -2, 'actual')
    assert shown.method == 'layercam' and [ax.get_title() for ax in axs] == shown.titles()
    torch.testing.assert_close(shown.maps, class_maps(learn.model, x[shown.idxs], shown.actual, 'layercam', -2).cpu())

def test_chapter_session_default_head(tmp_path):
    "The chapter's own learner, fastai's default head (no CAM): `fine_tune`, then `show_cam` shows Grad-CAM maps of the top losses"
    from fastcam.all import vision_learner, gradcam_maps
    dls = pets_dls(n=120, size=64, path=tmp_path, bs=16, num_workers=0)
    learn = vision_learner(dls, resnet34, metrics=error_rate, pretrained=False)
    with learn.no_bar(), learn.no_logging(): learn.fine_tune(1)
    with learn.no_bar(): axs = learn.show_cam()
    assert axs[0].figure._suptitle.get_text() == "Grad-CAM at 0.7 (auto: the head can't give CAM)"
    with learn.no_bar(): res = learn.top_losses_cam()
    assert res.method == 'gradcam' and len(res) == 9 and [ax.get_title() for ax in axs] == res.titles()
    with learn.no_bar(): _, _, losses = learn.get_preds(with_loss=True)
    assert res.idxs.tolist() == losses.topk(9).indices.tolist()
    torch.testing.assert_close(res.maps, gradcam_maps(learn.model, _valid_x(learn)[res.idxs], res.predicted).cpu())
    assert n_hooks(learn.model) == 0

def test_options_reach_the_maps(small):
    "`class_maps`' options given to `top_losses_cam` make its maps, and its caption and `opts` say so"
    from fastcam.cam import class_maps, CamOpts
    learn, _ = small
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    x = _valid_x(learn)
    with learn.no_bar(): r = learn.top_losses_cam(3, 'gradcam', -2, 'actual', eigen_smooth=True)
    torch.testing.assert_close(r.maps, class_maps(learn.model, x[r.idxs], r.actual, 'gradcam', -2, eigen_smooth=True).cpu())
    assert r.opts == CamOpts('gradcam', -2, 'actual', eigen_smooth=True) and r.caption().endswith(', eigen_smooth')
