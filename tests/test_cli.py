"The `fastcam` command end to end, as a user runs it: through the installed entry point, with its defaults."
import json, re, subprocess, sys
from urllib.parse import unquote
import pandas as pd
import torch
from pathlib import Path
from PIL import Image
from fastcam.learner import _native_bf16

FASTCAM = Path(sys.executable).parent/'fastcam'   # the entry point pip installed into this environment

def run(*args): return subprocess.run([str(FASTCAM), *args], capture_output=True, text=True)

def test_demo_meets_its_goals(tmp_path):
    """The README's main job with its defaults: error ≤ 2 %, CAM points at the animal ≥ 85 % of the time, files written.
    The pointing game moves with the torch build's bfloat16 kernels: CAM 0.9725 on torch 2.15, 0.885 on 2.14.1 (0.945 with --fp32)"""
    r = run('demo', '--out', str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((tmp_path/'summary.json').read_text())
    lines = r.stdout.splitlines()                                          # a readable summary, not JSON
    assert any(l.endswith(f"error rate {summary['error_rate']:.1%} on 400 validation images") for l in lines) and '\\u' not in r.stdout
    for m in ('cam', 'gradcam', 'centre'):                                 # the table's rows
        row = next(l.split() for l in lines if l.startswith(m + ' '))
        assert float(row[2]) == summary['pointing_game'][m] and float(row[3]) == summary['mean_iou'][m]
    assert 'torch.jit.script' not in r.stderr                              # fastai's import warning is not the user's business
    assert summary['error_rate'] <= 0.02
    pg = summary['pointing_game']
    assert pg['cam'] >= 0.85 and pg['cam'] > pg['centre'] + 0.3 and pg['gradcam'] > pg['centre']
    assert summary['mean_iou']['cam'] > summary['mean_iou']['centre'] and summary['map_sizes'] == dict(cam='6×6', gradcam='12×12')
    assert summary['cam_identity_max_error'] < 1e-3 and summary['hooks_left'] == 0
    assert summary['images'] == dict(train=1600, valid=400, size=96)
    assert summary['bfloat16'] == _native_bf16() and summary['epochs'] == 6
    idx = pd.read_csv(tmp_path/'cams'/'index.csv')
    assert len(idx) == 9 and idx.loss.is_monotonic_decreasing
    saved = torch.load(tmp_path/'cams'/'maps.pt', weights_only=True)
    assert saved['maps'].shape == (9, 6, 6) and saved['losses'].tolist() == idx.loss.tolist()
    for f in idx.overlay:
        with Image.open(tmp_path/'cams'/f) as im: assert im.size == (96, 96)
    with Image.open(tmp_path/'top_losses.png') as im: assert im.size[0] > 300
    page = (tmp_path/'index.html').read_text()                            # the report: every image it shows is there
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert srcs == ['top_losses.png'] + [f'cams/{o}' for o in idx.overlay] and all((tmp_path/unquote(o)).is_file() for o in srcs)
    assert f"error rate {summary['error_rate']:.1%}" in page and ('predicted cat' in page or 'predicted dog' in page)
    assert (tmp_path/'model.pkl').is_file()

def test_help_and_bad_input():
    r = run('demo', '--help')
    assert r.returncode == 0 and '--epochs' in r.stdout and 'one-cycle epochs' in r.stdout and '--arch' in r.stdout and '--fp32' in r.stdout
    r = run('frobnicate')
    assert r.returncode != 0 and "unknown command 'frobnicate'" in r.stderr
    r = run('demo', '--arch', 'vgg16')
    assert r.returncode != 0 and "unknown --arch 'vgg16'" in r.stderr
