"A method registered from outside the package works everywhere a method is named: `class_maps`, `TopLossCAM`, `show_cam`, `fastcam explain --plugin`"
import subprocess, sys, textwrap
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from PIL import Image
from torchvision.models import resnet18
from fastai.torch_core import set_seed
from fastcam.data import pets_dls
from fastcam.learner import cam_learner
from fastcam.callback import TopLossCAM, load_cams
from fastcam.cam import class_maps, layer_grads, METHODS, get_method, unregister
from fastcam.hooks import n_hooks
import fastcam.explain as ex

FASTCAM = Path(sys.executable).parent/'fastcam'
PLUGIN = '''
from fastcam.methods import register

@register('signgrad', 'Sign-grad CAM')
def signgrad(c, power:int=1):
    "Each channel weighed by the mean sign of its gradient, to the power `power`"
    return c.grad.sign().mean((2, 3)) ** power
'''

def by_hand(model, x, t, power=1):
    "The plugin's map, computed here from the activations and gradients at the default layer"
    act, grad, _ = layer_grads(model, x, t)
    return torch.einsum('bk,bkij->bij', grad.sign().mean((2, 3)) ** power, act)

@pytest.fixture(scope='module')
def plugin(tmp_path_factory):
    "The plugin as an importable module (on `sys.path` for this process, by `--plugin` for the command), imported"
    d = tmp_path_factory.mktemp('plugin')
    (d/'my_methods.py').write_text(PLUGIN)
    sys.path.insert(0, str(d))
    import my_methods
    yield d
    unregister('signgrad'); sys.path.remove(str(d)); sys.modules.pop('my_methods', None)

@pytest.fixture(scope='module')
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp('pets')
    set_seed(0, reproducible=True)
    dls = pets_dls(n=120, size=64, path=d/'pets', bs=16, num_workers=0)
    return d, dls

def test_class_maps_takes_it_by_name(plugin, small):
    _, dls = small
    assert 'signgrad' in METHODS and get_method('signgrad').params == {'power': 1}
    model = cam_learner(dls, resnet18, pretrained=False, cbs=[]).model.eval()
    x = dls.valid.one_batch()[0].as_subclass(torch.Tensor)
    torch.testing.assert_close(class_maps(model, x, 1, 'signgrad', params={'power': 3}), by_hand(model, x, 1, 3))
    with pytest.raises(ValueError, match="'signgrad' has no parameter 'n': its parameters are power"):
        class_maps(model, x, 1, 'signgrad', params={'n': 3})

def test_callback_and_show_cam(plugin, small):
    d, dls = small
    learn = cam_learner(dls, resnet18, pretrained=False, path=d, cbs=TopLossCAM(k=4, method='signgrad', params={'power': 2}))
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    res = learn.top_loss_cam.result
    assert res.method == 'signgrad' and res.caption() == 'Sign-grad CAM at 0.6, power=2'   # 64 px: the body ends at layer3
    x = dls.test_dl([dls.valid.items[int(i)] for i in res.idxs], bs=4).one_batch()[0].as_subclass(torch.Tensor)
    torch.testing.assert_close(res.maps, by_hand(learn.model, x, res.predicted, 2))
    saved = load_cams(d/'cams')
    assert saved.opts == res.opts and saved.caption() == res.caption() and saved.opts.params == {'power': 2}
    assert pd.read_csv(d/'cams'/'index.csv').options.unique().tolist() == ['power=2']
    axs = learn.show_cam(4)
    assert axs[0].figure._suptitle.get_text() == 'Sign-grad CAM at 0.6, power=2'
    with learn.no_bar(): axs = learn.show_cam(2, method='signgrad', opts={'params': {'power': 1}})   # other options: computed anew
    assert axs[0].figure._suptitle.get_text() == 'Sign-grad CAM at 0.6'                            # power=1 is its default
    assert n_hooks(learn.model) == 0

def test_command_line_plugin(plugin, small, tmp_path):
    d, dls = small
    set_seed(0, reproducible=True)
    learn = cam_learner(dls, resnet18, pretrained=False, path=tmp_path, cbs=[])
    learn.export(tmp_path/'model.pkl')
    (tmp_path/'imgs').mkdir()
    for f in dls.valid.items[:4]: Image.open(f).save(tmp_path/'imgs'/Path(f).name)
    run = lambda *a: subprocess.run([str(FASTCAM), *map(str, a)], capture_output=True, text=True, cwd=plugin)
    r = run('explain', tmp_path/'model.pkl', tmp_path/'imgs', '--out', tmp_path/'out', '--plugin', 'my_methods', '--method', 'signgrad', '--param', 'power=3')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'Sign-grad CAM at 0.6, power=3' in r.stdout
    idx = pd.read_csv(tmp_path/'out'/'index.csv')
    assert idx.method.unique().tolist() == ['signgrad'] and idx.options.unique().tolist() == ['power=3'] and len(idx) == 4
    x = learn.dls.test_dl([ex.load_rgb(f) for f in idx.file], bs=4).one_batch()[0].as_subclass(torch.Tensor)
    want = by_hand(learn.model.eval(), x, None, 3)
    saved = torch.stack([torch.tensor(np.load(tmp_path/'out'/f)) for f in idx.map_file])
    torch.testing.assert_close(saved, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())
    r = run('explain', tmp_path/'model.pkl', tmp_path/'imgs', '--out', tmp_path/'out2', '--method', 'signgrad')   # without the plugin: one clear line
    assert r.returncode == 1 and "fastcam explain: unknown `method` 'signgrad'" in r.stderr
    r = run('methods', '--plugin', str(plugin/'my_methods.py'))                                        # a file works too
    assert r.returncode == 0 and "signgrad (Sign-grad CAM; gradient; --param power=1): Each channel weighed by the mean sign of its gradient" in r.stdout

def test_installed_packages_register_by_entry_points(monkeypatch):
    "A package that declares an entry point in the group `fastcam.methods` has its methods loaded at the first lookup; one that fails is a warning"
    import fastcam.methods as fm
    class EP:
        def __init__(self, name, load): self.name, self.value, self.load = name, f'pkg_{name}:methods', load
    def good(): fm.register('epgrad', 'EP-grad', fn=lambda c: c.grad.mean((2, 3)))
    def bad(): raise ImportError('no such thing')
    monkeypatch.setattr(fm.importlib.metadata, 'entry_points', lambda group: [EP('good', good), EP('bad', bad)] if group == 'fastcam.methods' else [])
    monkeypatch.setitem(fm._STATE, 'loaded', False)
    with pytest.warns(UserWarning, match="the methods of 'pkg_bad:methods' \\(entry point 'bad'\\) could not be loaded: ImportError: no such thing"):
        assert 'epgrad' in METHODS
    assert get_method('epgrad').label == 'EP-grad'
    unregister('epgrad')

def test_registry_order_does_not_depend_on_the_import_order():
    "Whichever module a process imports first, the methods register in one order (the gradient methods, then those with passes of their own, then the attention ones)"
    import subprocess, sys
    def order(first):
        r = subprocess.run([sys.executable, '-c', f'import {first}\nfrom fastcam.methods import METHODS\nprint(",".join(METHODS))'], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout.strip().splitlines()[-1].split(',')
    want = order('fastcam.methods')
    assert want[-3:] == ['rollout', 'attngrad', 'legrad'] and want.index('finercam') < want.index('scorecam')
    for first in ('fastcam.passes', 'fastcam.attention'): assert order(first) == want, first
