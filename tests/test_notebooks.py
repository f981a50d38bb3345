"""The notebooks are committed with their outputs (`make notebooks`), so a reader on GitHub sees the maps without
running anything; the README's figures are files in the repository."""
import json, re
from pathlib import Path
import pytest

root = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((root/'nbs').glob('[!_.]*.ipynb')) + sorted((root/'nbs'/'course').glob('[!_.]*.ipynb'))
SHOW_MAPS = {'index', '05_vis', '06_data', '08_callback', '09_metrics', '01_cam_and_hooks', '02_questionnaire', '03_keepdim'}
SHOW_HTML = {'10_explain', '11_text', '04_text_cam'}      # tables, and the words of a text highlighted by their maps

def outputs(fn): return [(c, o) for c in json.loads(fn.read_text())['cells'] if c['cell_type'] == 'code' for o in c['outputs']]

@pytest.mark.parametrize('fn', NOTEBOOKS, ids=lambda f: f.stem)
def test_saved_with_outputs(fn):
    outs = [o for c, o in outputs(fn)]
    assert outs, f'{fn.name} has no outputs: run `make notebooks`'
    assert [o for o in outs if o['output_type'] == 'error'] == [], f'{fn.name} has an error output'
    html = [''.join(o.get('data', {}).get('text/html', '')) for o in outs]
    assert not any('<progress' in h or h.lstrip().startswith('<style>') for h in html), f'{fn.name} has a progress bar: run `make notebooks`'
    assert len([h for h in html if 'class="fastprogress"' in h]) <= sum('fit' in ''.join(c['source']) for c in json.loads(fn.read_text())['cells'])
    for o in outs:                                                   # small PNG figures, not retina-sized
        if 'image/png' in o.get('data', {}): assert len(''.join(o['data']['image/png'])) < 150_000, f'a figure of {fn.name} is over 110 kB'
    if fn.stem in SHOW_MAPS: assert any('image/png' in o.get('data', {}) for o in outs), f'{fn.name} shows no figure'
    if fn.stem in SHOW_HTML: assert any('text/html' in o.get('data', {}) for o in outs), f'{fn.name} shows no table or highlighted text'

def test_readme_figures_are_in_the_repo():
    readme = (root/'README.md').read_text()
    figs = re.findall(r'!\[[^\]]*\]\(([^)]+)\)', readme)
    assert {'nbs/images/demo_top_losses.png', 'nbs/images/methods.png', 'nbs/images/align.png'} <= set(figs)
    for f in figs: assert (root/f).is_file() and (root/f).stat().st_size < 200_000, f

