"`fastcam explain` on folders as they come: through the installed command, interrupted, on images PIL refuses, on any head, multi-label."
import os, re, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote
import numpy as np, pandas as pd, pytest, torch
from torch import nn
from fastai.data.block import DataBlock, MultiCategoryBlock
from fastai.data.transforms import ColReader, RandomSplitter
from fastai.vision.data import ImageBlock
from fastai.vision.learner import vision_learner
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from pathlib import Path
from PIL import Image
from torchvision.models import resnet18
from fastai.torch_core import set_seed
from fastcam.data import pets_dls
from fastcam.learner import cam_learner
from fastcam.cam import class_maps, gradcam_maps, get_method
from fastcam.callback import TopLosses
import fastcam.cli as cli
import fastcam.explain as ex
import fastcam.distrib as distrib

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
    x = torch.cat([learn.dls.test_dl([ex.load_rgb(f) for f in idx.file[i:i+8]]).one_batch()[0] for i in (0, 8, 16)])
    maps = class_maps(learn.model, x)
    saved = torch.stack([torch.tensor(np.load(tmp_path/'out'/f)) for f in idx.map_file])
    torch.testing.assert_close(saved, maps, rtol=1e-4, atol=1e-4 * maps.abs().max().item())
    with torch.no_grad(): pred = learn.model.eval()(x).argmax(1)
    assert idx.predicted.astype(str).tolist() == [str(learn.dls.vocab[p]) for p in pred]
    r = run('explain', d/'model.pkl', d/'imgs', d/'no_such.png', '--out', tmp_path/'out')
    assert r.returncode == 1 and '0 explained, 24 kept from an earlier run, 1 failed' in r.stdout
    idx = pd.read_csv(tmp_path/'out'/'index.csv')
    assert idx.iloc[-1].reason == 'no such file or folder'
    page = (tmp_path/'out'/'index.html').read_text()                      # the gallery: the maps kept, and the file that failed
    srcs = [unquote(o) for o in re.findall(r'<img src="([^"]+)"', page)]
    assert srcs == idx.overlay.dropna().tolist() and all((tmp_path/'out'/o).is_file() for o in srcs)
    assert f"<td>{d/'no_such.png'}</td>" in page and '<td>no such file or folder</td>' in page

@pytest.mark.parametrize('args, message', [
    (('nope.pkl', 'imgs'), "fastcam explain: no learner file 'nope.pkl'"),
    (('model.pkl', 'empty'), 'fastcam explain: no image files in empty: give image files or folders that hold some'),
    (('model.pkl', 'imgs', '--method', 'lime'), "fastcam explain: unknown `method` 'lime': use 'auto' or one of 'cam', 'gradcam', 'gradcam++', 'xgradcam', 'hirescam', 'layercam', 'gradcamelementwise', 'eigengradcam', 'shapleycam', 'finercam', 'scorecam', 'eigencam', 'ablationcam', 'smoothgradcampp'"),
    (('model.pkl', 'imgs', '--method', 'gradcam', '--layer', '12'), 'fastcam explain: --layer: `layer` 12 is out of range: the body has 7 groups'),
    (('model.pkl', 'imgs', '--target', 'dog'), "fastcam explain: unknown --target 'dog': use 'predicted', a class of ['False', 'True'] or its index"),
    (('pets/boxes.csv', 'imgs'), "fastcam explain: cannot load the learner 'pets/boxes.csv'"),
    (('model.pkl', 'imgs', '--method', 'fullgrad', '--layer', '-2'), "fastcam explain: --method fullgrad: FullGrad makes its maps from every bias layer of the model, not from one layer: leave `layer` at its default (None; no --layer), not -2"),
    (('model.pkl', 'imgs', '--method', 'kpcacam', '--param', 'kernel=laplace'), "fastcam explain: --method kpcacam: KPCA-CAM's `kernel` must be one of 'sigmoid', 'rbf', 'poly', 'cosine', 'linear', not 'laplace'"),
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

@pytest.mark.parametrize('writer', ['thread', 'in turn'])
def test_interrupted_run_keeps_whole_files_and_resumes(exported, tmp_path, monkeypatch, writer):
    "A KeyboardInterrupt while writing the 7th overlay: 6 complete images indexed, nothing half-written; the next run does the rest"
    d, _ = exported
    monkeypatch.setattr(ex, '_writer', lambda model: ThreadPoolExecutor(1) if writer == 'thread' else ex._Here())
    calls, real = [], ex._png
    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 7: raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(ex, '_png', flaky)
    with pytest.raises(KeyboardInterrupt): ex.explain_images(str(d/'model.pkl'), str(d/'imgs'), out=str(tmp_path), bs=6)
    assert sorted(o.name for o in tmp_path.rglob('.*')) == []                 # no temporary files
    idx = pd.read_csv(tmp_path/'index.csv')
    assert len(idx) == 6 and (idx.status == 'ok').all()                     # the first batch, indexed when it ended
    pngs = sorted(tmp_path.glob('*.cam.png'))
    assert [p.name for p in pngs] == sorted(idx.overlay)                   # the 7th map's .npy exists, its PNG does not
    for p in pngs:
        with Image.open(p) as im: im.load()                                # each one whole
    monkeypatch.setattr(ex, '_png', real)
    done = {f: (tmp_path/f).stat().st_mtime_ns for f in idx.overlay}
    idx = ex.explain_images(str(d/'model.pkl'), str(d/'imgs'), out=str(tmp_path), bs=6)
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
    idx = ex.explain_images(str(learn.path/'model.pkl'), str(f), out=str(tmp_path/'out'))
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

@pytest.mark.parametrize('method, params', [('hirescam', ''), ('scorecam', ''), ('shapleycam', 'rest=true'), ('kpcacam', 'kernel=rbf'),
                                            ('fullgrad', ''), ('randomcam', 'seed=3'), ('finercam', 'n=2,alpha=0.5')])
def test_any_method(exported, tmp_path, method, params):
    "`--method` takes every method, `--param` its parameters as text; the saved maps are that method's (FullGrad's, of the whole model, at the image's size)"
    d, learn = exported
    files, whole = sorted((d/'imgs').iterdir())[:5], get_method(method).whole
    idx = ex.explain_images(str(d/'model.pkl'), *map(str, files), out=str(tmp_path), method=method, layer='' if whole else '-2', bs=2, params=params)
    assert (idx.status == 'ok').all() and (idx.method == method).all() and (idx.options.fillna('') == params.replace('true', 'True').replace(',', ', ')).all()
    x = learn.dls.test_dl([ex.load_rgb(f) for f in files]).one_batch()[0]
    typed = {k: v for k, v in dict(shapleycam={'rest': True}, kpcacam={'kernel': 'rbf'}, randomcam={'seed': 3}, finercam={'n': 2, 'alpha': .5}).get(method, {}).items()}
    maps = class_maps(learn.model, x, None, method, None if whole else -2, params=typed)
    assert maps.shape[-2:] == ((64, 64) if whole else (8, 8))
    saved = torch.stack([torch.tensor(np.load(tmp_path/f)) for f in idx.map_file])
    torch.testing.assert_close(saved, maps, rtol=1e-4, atol=1e-4 * maps.abs().max().item())

@pytest.mark.parametrize('method', ['shapleycam', 'kpcacam', 'fullgrad', 'randomcam', 'finercam'])
def test_newer_methods_in_the_callback_and_show_cam(exported, method):
    "The newer methods through `TopLossCAM`'s pass (`top_losses_cam`) and `show_cam`: each map that method's of that image and class, the caption its own"
    d, learn = exported
    whole = get_method(method).whole
    res = learn.top_losses_cam(3, method=method, layer=None if whole else -2)
    assert res.method == method and len(res) == 3
    x = torch.cat([b[0] for b in learn.dls.valid.new(shuffle=False)])[res.idxs].as_subclass(torch.Tensor)
    ref = class_maps(learn.model, x, res.predicted, method, None if whole else -2)
    torch.testing.assert_close(res.maps, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())
    with learn.no_bar(): axs = learn.show_cam(3, method=method, layer=None if whole else -2)
    label = get_method(method).label
    assert axs[0].figure._suptitle.get_text() == (f'{label} at {get_method(method).whole}' if whole else f'{label} at 0.5')

def saved_maps(out, idx): return torch.stack([torch.tensor(np.load(out/f)) for f in idx.map_file])

class Viewing(nn.Module):
    "A conv, then GAP → Linear, with a `view` of its input on the way in (`misread`: its memory read as if contiguous): it takes contiguous batches only, as some hand-written models do"
    def __init__(self, misread=False):
        super().__init__(); self.misread = misread
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()); self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    def forward(self, x):
        x = x.as_strided(x.shape, torch.empty(x.shape).stride()) if self.misread else x.view(len(x), -1).view(x.shape)
        return self.head(self.body(x))

def test_channels_last_where_the_model_takes_it(exported, tmp_path):
    "On the CPU the batches reach the model channels-last; a model that `view`s its input, or misreads the layout, gets them contiguous, and every map as `class_maps` makes it"
    d, learn = exported
    files = sorted((d/'imgs').iterdir())[:5]
    x = learn.dls.test_dl([ex.load_rgb(f) for f in files]).one_batch()[0]
    def formats(model):
        seen = []
        return seen, model.register_forward_pre_hook(lambda m, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    seen, h = formats(learn.model)
    try: idx = ex.explain_images(learn, *map(str, files), out=str(tmp_path/'a'), bs=5)
    finally: h.remove()
    assert (idx.status == "ok").all() and seen[-1]                                # the last forward pass: the five images
    for misread in (False, True):
        set_seed(0, reproducible=True)
        view = Learner(learn.dls, Viewing(misread), loss_func=CrossEntropyLossFlat())
        seen, h = formats(view.model)
        with h: idx = ex.explain_images(view, *map(str, files), out=str(tmp_path/f'b{misread}'), bs=5)
        assert (idx.status == "ok").all() and (idx.method == "cam").all() and seen and not seen[-1]
        ref = class_maps(view.model, x)
        torch.testing.assert_close(saved_maps(tmp_path/f'b{misread}', idx), ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())

def test_writer_thread_only_where_a_core_is_free(monkeypatch):
    "A writing thread where torch leaves a core free or the model is not on the CPU; else each job done at once, its error kept for `result()`"
    cores, cpu, meta = distrib.cores(), nn.Linear(2, 2), nn.Linear(2, 2, device='meta')
    monkeypatch.setattr(torch, 'get_num_threads', lambda: cores)
    assert isinstance(ex._writer(cpu), ex._Here) and isinstance(ex._writer(meta), ThreadPoolExecutor)
    monkeypatch.setattr(torch, 'get_num_threads', lambda: cores - 1)
    assert isinstance(ex._writer(cpu), ThreadPoolExecutor)
    monkeypatch.setenv('LOCAL_WORLD_SIZE', str(2 * cores))                 # torchrun's processes share the cores: none left for a thread
    assert distrib.cores() == 1 and isinstance(ex._writer(cpu), ex._Here)
    job = ex._Here().submit(lambda a, b: a / b, 1, 0)
    assert job.done() and isinstance(job.exception(), ZeroDivisionError) and ex._Here().submit(divmod, 7, 2).result() == (3, 1)

def test_fastai_default_head_gets_gradcam(exported, tmp_path, capsys):
    "fastai's default head has no CAM: `--method auto` makes Grad-CAM maps, says so, records it; `--method cam` is one clear line"
    d, learn = exported
    set_seed(0, reproducible=True)
    plain = vision_learner(learn.dls, resnet18, pretrained=False, path=d)      # ConcatPool → BN → Linear → ReLU → BN → Linear
    plain.export(d/'plain.pkl')
    files = sorted((d/'imgs').iterdir())[:6]
    r = run('explain', d/'plain.pkl', *files, '--out', tmp_path, '--bs', 4)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Grad-CAM at 0.7 (auto: the head can't give CAM)" in r.stdout
    idx = pd.read_csv(tmp_path/'index.csv')
    assert (idx.method == 'gradcam').all() and len(idx) == 6
    x = plain.dls.test_dl([ex.load_rgb(f) for f in files], bs=6).one_batch()[0]   # the same decoded batch
    ref = gradcam_maps(plain.model, x)
    torch.testing.assert_close(saved_maps(tmp_path, idx), ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    with torch.no_grad(): probs = plain.model.eval()(x).softmax(1)
    np.testing.assert_allclose(idx.probability, probs.max(1).values.numpy(), atol=1e-4)
    done = {f: (tmp_path/f).stat().st_mtime_ns for f in idx.overlay}
    ex.explain_images(str(d/'plain.pkl'), *map(str, files), out=str(tmp_path), method='gradcam')    # the method the index records: kept
    assert '0 explained, 6 kept from an earlier run' in capsys.readouterr().out
    assert all((tmp_path/f).stat().st_mtime_ns == t for f, t in done.items()) and pd.read_csv(tmp_path/'index.csv').equals(idx)
    with pytest.raises(SystemExit) as e: cli.main(['explain', str(d/'plain.pkl'), *map(str, files), '--method', 'cam'])
    assert str(e.value.code).startswith('fastcam explain: --method cam: CAM needs a head that is global average pooling')

LABELS = ['cat', 'dog/puppy', 'Dog puppy']          # made safe for file names, the last two look alike (to a file system that ignores case)

@pytest.fixture(scope='module')
def multi(tmp_path_factory):
    "A multi-label learner with fastai's default head, untrained, whose threshold lets two labels through; 8 images"
    d = tmp_path_factory.mktemp('multi')
    rng, rows = np.random.default_rng(0), []
    (d/'imgs').mkdir()
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(d/'imgs'/f'{i}.png')
        rows.append((f'{i}.png', ';'.join(l for l in LABELS if rng.random() < 0.5)))
    df = pd.DataFrame(rows, columns=['fname', 'labels'])
    dls = DataBlock(blocks=(ImageBlock, MultiCategoryBlock), get_x=ColReader('fname', pref=d/'imgs'), get_y=ColReader('labels', label_delim=';'),
                    splitter=RandomSplitter(0.25, seed=0)).dataloaders(df, bs=4, num_workers=0)
    set_seed(0, reproducible=True)
    learn = vision_learner(dls, resnet18, pretrained=False, path=d)
    files = sorted((d/'imgs').iterdir())
    x = learn.dls.test_dl([ex.load_rgb(f) for f in files], bs=8).one_batch()[0]
    with torch.no_grad(): probs = learn.model.eval()(x).sigmoid()
    lo, hi = probs.sort(1, descending=True).values[:, 1:3].T            # every image's second and third highest probability
    assert lo.min() > hi.max() + 1e-3                                   # a clear gap for the threshold
    learn.loss_func.thresh = float(lo.min() + hi.max()) / 2
    learn.export(d/'multi.pkl')
    learn.loss_func.thresh = 0.999
    learn.export(d/'none.pkl')                                          # no label above it
    return d, learn, files, x, probs

def test_multi_label_one_map_per_label(multi, tmp_path):
    "One row and one map per (image, label above the threshold), each map `class_maps` of its label; names distinct; resumed"
    d, learn, files, x, probs = multi
    vocab = list(learn.dls.vocab)
    assert vocab == sorted(LABELS) and ex._file_labels(vocab) == ['0-Dog_puppy', '1-cat', '2-dog_puppy']
    r = run('explain', d/'multi.pkl', d/'imgs', '--out', tmp_path, '--bs', 3)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "8 explained (16 maps), 0 kept from an earlier run, 0 failed, 0 skipped; Grad-CAM at 0.7 (auto: the head can't give CAM)" in r.stdout
    idx = pd.read_csv(tmp_path/'index.csv', dtype=str, keep_default_na=False)
    above = probs >= probs.sort(1, descending=True).values[:, 1:2]      # the threshold exported lets each image's top two through
    want = [(str(f), vocab[c]) for f, a in zip(files, above) for c in a.nonzero()[:, 0].tolist()]
    assert list(zip(idx.file, idx.label)) == want and (idx.status == 'ok').all() and (idx.reason == '').all()
    assert idx.predicted.tolist() == [';'.join(vocab[c] for c in a.nonzero()[:, 0].tolist()) for a in above for _ in range(2)]
    i = torch.tensor([files.index(Path(f)) for f in idx.file]); c = torch.tensor([vocab.index(o) for o in idx.label])
    np.testing.assert_allclose(idx.probability.astype(float), probs[i, c].numpy(), atol=1e-4)
    assert idx.overlay.is_unique and idx.map_file.is_unique and len({o.lower() for o in idx.overlay}) == 16
    safe = dict(zip(vocab, ex._file_labels(vocab)))
    assert idx.overlay.tolist() == [f'{Path(f).name}.{safe[l]}.cam.png' for f, l in zip(idx.file, idx.label)]
    assert sorted(o.name for o in tmp_path.iterdir()) == sorted([*idx.overlay, *idx.map_file, 'index.csv', 'index.html'])
    ref = class_maps(learn.model, x[i], c)                               # each row's map, made alone for its label
    torch.testing.assert_close(saved_maps(tmp_path, idx), ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    done = {f: (tmp_path/f).stat().st_mtime_ns for f in idx.overlay}
    again = ex.explain_images(str(d/'multi.pkl'), str(d/'imgs'), out=str(tmp_path))
    assert len(again) == 16 and all((tmp_path/f).stat().st_mtime_ns == t for f, t in done.items())
    assert pd.read_csv(tmp_path/'index.csv', dtype=str, keep_default_na=False).equals(idx)

def test_multi_label_target_and_no_label(multi, tmp_path):
    "`--target` a label: one map per image; no label above the threshold: the most probable label's map, with a note"
    d, learn, files, x, probs = multi
    t = ex.explain_images(str(d/'multi.pkl'), str(d/'imgs'), out=str(tmp_path/'t'), target='dog/puppy')
    assert len(t) == 8 and (t.label == 'dog/puppy').all() and (t.target == 'dog/puppy').all() and (t.reason == '').all()
    assert t.overlay.str.endswith('.2-dog_puppy.cam.png').all()
    torch.testing.assert_close(saved_maps(tmp_path/'t', t), ref := class_maps(learn.model, x, 2), rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    n = ex.explain_images(str(d/'none.pkl'), str(d/'imgs'), out=str(tmp_path/'n'))
    assert len(n) == 8 and (n.predicted == '').all() and (n.label == [learn.dls.vocab[c] for c in probs.argmax(1)]).all()
    assert (n.reason == 'no label above the threshold 0.999: the map of its most probable label').all() and (n.status == 'ok').all()
    torch.testing.assert_close(saved_maps(tmp_path/'n', n), ref := class_maps(learn.model, x), rtol=1e-4, atol=1e-4 * ref.abs().max().item())

def test_multi_label_top_losses_as_get_preds(multi):
    "TopLossCAM on a multi-label learner: fastai's losses (averaged over the labels), a map for each label an item has or is predicted to have"
    d, learn, files, x, probs = multi
    thresh = learn.loss_func.thresh
    try:
        learn.loss_func.thresh = 0.5
        with learn.no_bar(), learn.no_logging(): p, y, l = learn.get_preds(with_loss=True)
        res = learn.top_losses_cam(len(y))
        assert isinstance(res, TopLosses) and res.multi_label
    finally: learn.loss_func.thresh = thresh
    torch.testing.assert_close(res.losses, l.sort(descending=True).values)
    for r, i in enumerate(res.idxs.tolist()):
        want = set(((y[i] > 0) | (p[i] > 0.5)).nonzero()[:, 0].tolist()) or {int(p[i].argmax())}
        assert {c for it, c in zip(res.map_item.tolist(), res.map_class.tolist()) if it == r} == want

def test_a_refused_pass_leaves_the_learner_usable(exported):
    "Bad options are refused before `get_preds` takes fastai's lock (an error inside its context would leave it taken: every later pass hangs)"
    from fastcam.callback import TopLossCAM
    d, learn = exported
    with pytest.raises(ValueError, match="nope"): learn.top_losses_cam(3, layer='nope')
    assert not learn.lock.locked()
    cb = TopLossCAM(layer='nope', fname=None)
    learn.add_cb(cb)
    try:
        with learn.no_bar(): learn.validate()                             # no fit: the callback keeps nothing and checks nothing
        assert not learn.lock.locked() and cb.result is None
        with pytest.raises(ValueError, match="nope"): learn.fit(1)        # a fit is told before it trains
    finally: learn.remove_cb(cb)
    assert len(learn.top_losses_cam(3)) == 3 and not learn.lock.locked()
