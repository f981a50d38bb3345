"The `fastcam` command end to end, as a user runs it: through the installed entry point."
import json, subprocess, sys
from pathlib import Path
from PIL import Image

FASTCAM = Path(sys.executable).parent/'fastcam'   # the entry point pip installed into this environment

def run(*args): return subprocess.run([str(FASTCAM), *args], capture_output=True, text=True)

def test_demo_writes_what_it_prints(tmp_path):
    r = run('demo', '--out', str(tmp_path), '--n', '256', '--epochs', '3')
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path/'summary.json').read_text())
    assert json.loads(r.stdout[:r.stdout.rindex('}') + 1]) == summary
    assert summary['cam_identity_max_error'] < 1e-4 and summary['gradcam_times_hw_vs_cam_max_error'] < 1e-4
    assert summary['hooks_left'] == 0
    assert summary['pointing_game']['cam'] > summary['pointing_game']['centre']
    with Image.open(tmp_path/'cam.png') as im: assert im.size[0] > 100

def test_help_and_bad_command():
    r = run('demo', '--help')
    assert r.returncode == 0 and '--epochs' in r.stdout and 'passes over them' in r.stdout
    r = run('frobnicate')
    assert r.returncode != 0 and "unknown command 'frobnicate'" in r.stderr
