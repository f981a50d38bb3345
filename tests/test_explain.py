"`fastcam explain` on folders as they come: through the installed command, interrupted, and on images PIL refuses."
import subprocess, sys
import numpy as np, pandas as pd, pytest, torch
from pathlib import Path
from PIL import Image
from torchvision.models import resnet18
from fastai.torch_core import set_seed
from fastcam.data import pets_dls
from fastcam.learner import cam_learner
from fastcam.cam import class_maps
import fastcam.cli as cli

FASTCAM = Path(sys.executable).parent/'fastcam'
def run(*args): return subprocess.run([str(FASTCAM), *map(str, args)], capture_output=True, text=True)

@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    "A small pets learner saved with `learn.export()`, and a folder of 24 of its validation images"
    d = tmp_path_factory.mktemp('explain')
    set_seed(0, reproducible=True)
    dls = pets_dls(n=200, size=64, path=d/'pets', bs=16, num_workers=0)
    learn = cam_learner(dls, resnet18, pretrained=False, path=d, cbs=[])
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 3e-3)
    learn.export(d/'model.pkl')
    (d/'imgs').mkdir()
    for f in dls.valid.items[:24]: Image.open(f).save(d/'imgs'/Path(f).name)
    return d, learn

def test_command_end_to_end(exported, tmp_path):
    d, learn = exported
    r = run('explain', d/'model.pkl', d/'imgs', '--out', tmp_path/'out', '--bs', 5)
    assert r.returncode == 0, r.stderr[-2000:]
    idx = pd.read_csv(tmp_path/'out'/'index.csv')
    assert len(idx) == 24 and (idx.status == 'ok').all() and '24 explained, 0 kept' in r.stdout
    x = torch.cat([learn.dls.test_dl([cli.load_rgb(f) for f in idx.file[i:i+8]]).one_batch()[0] for i in (0, 8, 16)])
    maps = class_maps(learn.model, x)
    saved = torch.stack([torch.tensor(np.load(tmp_path/'out'/f)) for f in idx.map_file])
    torch.testing.assert_close(saved, maps, rtol=1e-4, atol=1e-4 * maps.abs().max().item())
    with torch.no_grad(): pred = learn.model.eval()(x).argmax(1)
    assert idx.predicted.astype(str).tolist() == [str(learn.dls.vocab[p]) for p in pred]
    r = run('explain', d/'model.pkl', d/'imgs', d/'no_such.png', '--out', tmp_path/'out')
    assert r.returncode == 1 and '0 explained, 24 kept from an earlier run, 1 failed' in r.stdout
    idx = pd.read_csv(tmp_path/'out'/'index.csv')
    assert idx.iloc[-1].reason == 'no such file or folder'

@pytest.mark.parametrize('args, message', [
    (('nope.pkl', 'imgs'), "fastcam explain: no learner file 'nope.pkl'"),
    (('model.pkl', 'empty'), 'fastcam explain: no image files in empty: give image files or folders that hold some'),
    (('model.pkl', 'imgs', '--method', 'lime'), "fastcam explain: unknown --method 'lime': use one of cam, gradcam, gradcam++, xgradcam, hirescam, layercam, scorecam"),
    (('model.pkl', 'imgs', '--method', 'gradcam', '--layer', '12'), 'fastcam explain: --layer: `layer` 12 is out of range: the body has 7 groups'),
    (('model.pkl', 'imgs', '--target', 'dog'), "fastcam explain: unknown --target 'dog': use 'predicted', a class of ['False', 'True'] or its index"),
    (('pets/boxes.csv', 'imgs'), "fastcam explain: cannot load the learner 'pets/boxes.csv'"),
])
def test_bad_options_one_clear_line(exported, args, message):
    d, _ = exported
    (d/'empty').mkdir(exist_ok=True)
    r = subprocess.run([str(FASTCAM), 'explain', *args], capture_output=True, text=True, cwd=d)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith(message)

def test_help_warns_about_pickles():
    r = run('explain', '--help')
    assert r.returncode == 0 and 'load only files you trust' in ' '.join(r.stdout.split()) and '--force' in r.stdout

def test_interrupted_run_keeps_whole_files_and_resumes(exported, tmp_path, monkeypatch):
    "A KeyboardInterrupt while writing the 7th overlay: 6 complete images indexed, nothing half-written; the next run does the rest"
    d, _ = exported
    calls, real = [], cli.overlay
    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 7: raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(cli, 'overlay', flaky)
    with pytest.raises(KeyboardInterrupt): cli.explain(str(d/'model.pkl'), str(d/'imgs'), out=str(tmp_path), bs=6)
    assert sorted(o.name for o in tmp_path.rglob('.*')) == []                 # no temporary files
    idx = pd.read_csv(tmp_path/'index.csv')
    assert len(idx) == 6 and (idx.status == 'ok').all()                     # the first batch, indexed when it ended
    pngs = sorted(tmp_path.glob('*.cam.png'))
    assert [p.name for p in pngs] == sorted(idx.overlay)                   # the 7th map's .npy exists, its PNG does not
    for p in pngs:
        with Image.open(p) as im: im.load()                                # each one whole
    monkeypatch.setattr(cli, 'overlay', real)
    done = {f: (tmp_path/f).stat().st_mtime_ns for f in idx.overlay}
    idx = cli.explain(str(d/'model.pkl'), str(d/'imgs'), out=str(tmp_path), bs=6)
    assert len(idx) == 24 and (idx.status == 'ok').all()
    assert all((tmp_path/f).stat().st_mtime_ns == t for f, t in done.items())  # the finished six were not redone

def test_odd_images(exported, tmp_path, monkeypatch):
    "Grayscale, palette, RGBA, 16-bit, float, CMYK, huge: converted; corrupt, empty, a dangling link, over PIL's pixel limit: listed"
    d, learn = exported
    src = sorted((d/'imgs').iterdir())[0]
    im, f = Image.open(src).convert('RGB'), tmp_path/'in'
    f.mkdir()
    im.convert('L').save(f/'grey.png'); im.convert('P').save(f/'palette.gif'); im.convert('RGBA').save(f/'alpha.png')
    im.convert('CMYK').save(f/'cmyk.jpg'); im.resize((3000, 2000)).save(f/'huge.jpg', quality=70)
    Image.fromarray(np.asarray(im.convert('L'), dtype=np.uint16) * 257).save(f/'deep.png')
    Image.fromarray(np.asarray(im.convert('L'), dtype=np.float32) / 255).save(f/'float.tif')
    (f/'corrupt.jpg').write_bytes((f/'cmyk.jpg').read_bytes()[:500])
    (f/'empty.png').write_bytes(b'')
    (f/'gone.png').symlink_to(tmp_path/'nowhere.png')
    Image.new('1', (5000, 5000)).save(f/'bomb.png')
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 10_000_000)    # bomb.png is over twice the limit: PIL refuses it
    idx = cli.explain(str(learn.path/'model.pkl'), str(f), out=str(tmp_path/'out'))
    idx.index = [Path(p).name for p in idx.file]
    ok = ['alpha.png', 'cmyk.jpg', 'deep.png', 'float.tif', 'grey.png', 'huge.jpg', 'palette.gif']
    assert sorted(idx.index[idx.status == 'ok']) == ok
    reasons = idx.reason.to_dict()
    assert reasons['bomb.png'].startswith('DecompressionBombError: Image size (25000000 pixels) exceeds limit of 20000000 pixels')
    assert reasons['corrupt.jpg'].startswith('OSError')
    assert reasons['empty.png'].startswith('UnidentifiedImageError') and reasons['gone.png'].startswith('FileNotFoundError')
    grey = np.load(tmp_path/'out'/idx.map_file['grey.png'])
    np.testing.assert_allclose(np.load(tmp_path/'out'/idx.map_file['deep.png']), grey, rtol=1e-5, atol=1e-5)   # 16-bit read as 8-bit
    np.testing.assert_allclose(np.load(tmp_path/'out'/idx.map_file['float.tif']), grey, rtol=1e-5, atol=1e-5)  # float in [0, 1] too

@pytest.mark.parametrize('method', ['hirescam', 'scorecam'])
def test_any_method(exported, tmp_path, method):
    "`--method` takes every method; the saved maps are that method's"
    d, learn = exported
    files = sorted((d/'imgs').iterdir())[:5]
    idx = cli.explain(str(d/'model.pkl'), *map(str, files), out=str(tmp_path), method=method, layer='-2', bs=2)
    assert (idx.status == 'ok').all() and (idx.method == method).all()
    x = learn.dls.test_dl([cli.load_rgb(f) for f in files]).one_batch()[0]
    maps = class_maps(learn.model, x, None, method, -2)
    saved = torch.stack([torch.tensor(np.load(tmp_path/f)) for f in idx.map_file])
    torch.testing.assert_close(saved, maps, rtol=1e-4, atol=1e-4 * maps.abs().max().item())
