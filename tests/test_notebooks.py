"""The notebooks are committed with their outputs (`make notebooks`), so a reader on GitHub sees the maps without
running anything; the README's figures are files in the repository."""
import json, re
from pathlib import Path
import pytest

root = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((root/'nbs').glob('[!_.]*.ipynb')) + sorted((root/'nbs'/'course').glob('[!_.]*.ipynb'))
SHOW_MAPS = {'index', '05_vis', '06_data', '08_callback', '09_metrics', '10_explain', '11_text', '01_cam_and_hooks', '02_questionnaire', '03_keepdim', '04_text_cam', '05_what_maps_are_for', '06_other_targets'}
SHOW_HTML = {'10_explain', '04_text_cam'}      # tables, and the words of a text highlighted by their maps

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

# What a reader should never see in a saved output (issue 28): warnings and tracebacks, this machine's temporary paths,
# object reprs where a figure or a value was meant, fastai's epoch log as bare lists, floats printed to 16 digits
TMP = re.compile(r'/tmp/|\btmp[a-z0-9_]{8}\b')
REPR = re.compile(r'<(?:matplotlib\.[\w.]+|Axes|AxesSubplot|Figure)\b[^>]*>')
BARE_EPOCH = re.compile(r'^\[\d+, [-\d.]+, [-\d.]+', re.M)
LONG_FLOAT = re.compile(r'\d\.\d{7,}')
ERROR_LINE = re.compile(r'error(?: rate)?\b[^\n%]{0,60}?(\d+(?:\.\d+)?) ?%', re.I)
COURSE = {f.stem for f in (root/'nbs'/'course').glob('[!_.]*.ipynb')}
MODEL_MAPS = {'index', '04_cam', '05_vis', '08_callback', '09_metrics', '10_explain', *COURSE}   # maps of a trained model, shown

def text_of(o):
    "What a reader sees as text: a stream, or a value shown as text (a figure's text form is hidden behind its picture)"
    d = o.get('data', {})
    return ''.join(o.get('text', '')) + ('' if 'image/png' in d or 'text/html' in d else ''.join(d.get('text/plain', '')))

@pytest.mark.parametrize('fn', NOTEBOOKS, ids=lambda f: f.stem)
def test_outputs_are_clean(fn):
    for c, o in outputs(fn):
        t, where = text_of(o), f"{fn.name}, cell {c.get('id')}"
        assert o['output_type'] != 'error' and 'Traceback' not in t, f'{where}: a traceback'
        assert o.get('name') != 'stderr' and not re.search(r'\w+Warning\b:', t), f'{where}: a warning: {t[:200]!r}'
        assert not TMP.search(t), f'{where}: a temporary path: {TMP.search(t)[0]!r}'
        assert not REPR.search(t), f"{where}: an object's repr (end the line with `;`): {REPR.search(t)[0]!r}"
        assert not BARE_EPOCH.search(t), f"{where}: fastai's epoch log as bare lists: show it as a table (not `no_bar`)"
        assert not LONG_FLOAT.search(t), f'{where}: an unrounded float: {LONG_FLOAT.search(t)[0]!r}'

DICE_LINE = re.compile(r'\bDice (\d\.\d+)')                                  # a segmentation model's
RMSE_LINE = re.compile(r'\bRMSE (\d+(?:\.\d+)?)\b.*\bstandard deviation (\d+(?:\.\d+)?)')   # a regression model's, beside the labels'

@pytest.mark.parametrize('fn', [f for f in NOTEBOOKS if f.stem in MODEL_MAPS], ids=lambda f: f.stem)
def test_maps_come_from_a_model_that_learned(fn):
    "A notebook that shows maps prints its model's error: at most 3 % (a Dice of at least 0.8; an RMSE at most a third of the labels' standard deviation) unless the line says the model is weak on purpose"
    lines = [l for c, o in outputs(fn) for l in text_of(o).splitlines() if ERROR_LINE.search(l) or DICE_LINE.search(l) or RMSE_LINE.search(l)]
    assert lines, f'{fn.name} shows maps but prints no error rate of its model'
    for l in lines:
        if re.search(r'untrained|on purpose|random weights', l): continue
        if m := ERROR_LINE.search(l): assert float(m[1]) <= 3, f'{fn.name}: {l!r}'
        if m := DICE_LINE.search(l): assert float(m[1]) >= 0.8, f'{fn.name}: {l!r}'
        if m := RMSE_LINE.search(l): assert float(m[1]) <= float(m[2]) / 3, f'{fn.name}: {l!r}'

@pytest.mark.parametrize('fn', [f for f in NOTEBOOKS if f.stem in COURSE], ids=lambda f: f.stem)
def test_course_figures_are_read(fn):
    "In the course, every figure is followed by a markdown cell that says what it shows"
    cells = json.loads(fn.read_text())['cells']
    for i, c in enumerate(cells):
        if c['cell_type'] == 'code' and any('image/png' in o.get('data', {}) for o in c['outputs']):
            assert i + 1 < len(cells) and cells[i + 1]['cell_type'] == 'markdown', f"{fn.name}, cell {c.get('id')}: a figure nobody reads"

@pytest.mark.parametrize('fn', NOTEBOOKS, ids=lambda f: f.stem)
def test_styled_html_also_as_a_picture(fn):
    "GitHub strips inline styles: highlighted HTML is also shown as a PNG, in the same cell"
    for c in json.loads(fn.read_text())['cells']:
        if c['cell_type'] != 'code': continue
        styled = any('style="background' in ''.join(o.get('data', {}).get('text/html', '')) for o in c['outputs'])
        if styled: assert any('image/png' in o.get('data', {}) for o in c['outputs']), f"{fn.name}, cell {c.get('id')}: styled HTML with no picture of it"

@pytest.mark.parametrize('fn', NOTEBOOKS, ids=lambda f: f.stem)
def test_export_cells_are_short(fn):
    "A notebook reads as a lesson when each exported cell is one idea a reader takes in at once: about 30 lines at most"
    for c in json.loads(fn.read_text())['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'code' and src.startswith('#| export'):
            assert len(src.splitlines()) <= 32, f"{fn.name}, cell {c.get('id')}: an export cell of {len(src.splitlines())} lines: split it at its functions"
