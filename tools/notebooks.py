"""Run every notebook of nbs/ and save it with its outputs: `make notebooks`.

Each notebook runs in a fresh process (two at a time, one torch thread each, as `make test` runs them), seeded, on the
bundled data, with the cells nbdev-test runs (and the `#| slow` cells of the notebooks in `SLOW`: the README's session, a ViT next to a ResNet). What is saved is what a reader should see: figures as 72-dpi PNGs in 256
colours, fastai's epoch table without its progress bars, no progress bars of `get_preds`, and no error output (the run
stops at the first one; what a cell writes to stderr, such as a warning shown on purpose, is kept and listed). The notebooks are then cleaned by nbdev-clean, which keeps the outputs.
"""
import base64, io, os, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

root = Path(__file__).resolve().parent.parent

# Run in each notebook's shell before its first cell; not saved.
PREAMBLE = '''
import warnings
warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated')     # fastai's import, and noise from libraries
warnings.filterwarnings('ignore', message='load_learner` uses Python')             # (the notebooks say to load only trusted files)
warnings.filterwarnings('ignore', message="Falling back to the 'python' engine")
warnings.filterwarnings('ignore', message='no pretrained weights for')             # offline: the text says the model trains from scratch
warnings.formatwarning = lambda msg, cat, *args, **kwargs: f'{cat.__name__}: {msg}\\n'   # a warning shown on purpose, without this machine's paths
import fastprogress.fastprogress as _fp                                   # before fastai and fastcam import its bars by name:
_fp.master_bar, _fp.progress_bar = _fp.NBMasterBar, _fp.NBProgressBar     # Jupyter's HTML bars and epoch table, not the console's
from fastai.torch_core import set_seed as _set_seed
_set_seed(0, reproducible=True)
'''

def notebooks():
    "The notebooks `make notebooks` runs: the modules', then the course's"
    return sorted((root/'nbs').glob('[!_.]*.ipynb')) + sorted((root/'nbs'/'course').glob('[!_.]*.ipynb'))

def _small_png(b64:str)->str:
    "A PNG output as a 256-colour PNG (a third of the size; the magma overlays lose nothing visible)"
    from PIL import Image
    im = Image.open(io.BytesIO(base64.b64decode(b64)))
    if im.mode == 'RGBA' and im.getextrema()[3][0] == 255: im = im.convert('RGB')
    buf = io.BytesIO()
    (im.quantize(256, method=Image.Quantize.FASTOCTREE) if im.mode == 'RGB' else im).save(buf, format='png', optimize=True)
    return base64.b64encode(buf.getvalue()).decode()

def _is_bar(o)->bool:
    "A display of a fastprogress bar: its HTML has a <progress> element, is empty (a bar with `leave=False` ended) or is the bars' style sheet"
    html = ''.join(o.get('data', {}).get('text/html', 'x')).strip()
    return o.get('output_type') == 'display_data' and ('<progress' in html or not html or html.startswith('<style>') and 'progress' in html)

def tidy(outputs:list)->list:
    "A cell's outputs as a reader should see them: progress bars dropped, of each epoch table only the last, PNGs made small"
    keep = [o for o in outputs if not _is_bar(o)]
    tables = [i for i, o in enumerate(keep) if 'class="fastprogress"' in ''.join(o.get('data', {}).get('text/html', ''))]
    keep = [o for i, o in enumerate(keep) if i not in tables[:-1]]        # the table is re-displayed after every epoch
    for o in keep:
        d = o.get('data', {})
        if 'image/png' in d: d['image/png'] = _small_png(''.join(d['image/png']))
    return keep

SLOW = ('index.ipynb', '04_cam.ipynb')   # their `#| slow` cells run too: the README's session (2 min), a ViT next to a ResNet (about 5)

def run_one(fn:Path):
    "Run notebook `fn` as nbdev-test does (same skipped cells), after `PREAMBLE`; save it with its outputs tidied"
    import json
    from execnb.shell import CaptureShell
    import nbdev.test as nt
    class Shell(CaptureShell):
        def __init__(self, path=None, **kw):
            super().__init__(path, mpl_format='png', **kw)
            self.run(PREAMBLE)
            if self.exc: raise self.exc
    nt.CaptureShell = Shell
    force = ['slow'] if fn.name in SLOW else None                            # figures worth their minutes, which the tests skip
    ok, secs = nt.test_nb(fn, skip_flags=nt.get_config().tst_flags, force_flags=force, save=True)
    if not ok: sys.exit(f'{fn.relative_to(root)}: a cell failed (above); nothing saved')
    nb = json.loads(fn.read_text())
    for c in nb['cells']:
        if c['cell_type'] != 'code': continue
        c['outputs'] = tidy(c['outputs'])
        bad = [o for o in c['outputs'] if o['output_type'] == 'error']
        if bad: sys.exit(f"{fn.relative_to(root)}: cell {c.get('id')} has an error output: {bad[0].get('ename')}: {bad[0].get('evalue', '')[:300]}")
        for o in c['outputs']:                                                  # a warning the notebook shows on purpose is kept: say so
            if o.get('name') == 'stderr': print(f"{fn.relative_to(root)}: cell {c.get('id')} keeps stderr output: {''.join(o['text'])[:150]!r}")
    fn.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    print(f'{fn.relative_to(root)}: {secs:.0f} s, {fn.stat().st_size/1e3:.0f} kB', flush=True)

def main(args):
    "`python tools/notebooks.py [NOTEBOOK ...]`: run them (default: all) two at a time, then nbdev-clean"
    if args and args[0] == '--one': return run_one(Path(args[1]).resolve())
    fns = [Path(a).resolve() for a in args] or notebooks()
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'module://matplotlib_inline.backend_inline'}
    t0 = time.time()
    def one(fn): return subprocess.run([sys.executable, __file__, '--one', str(fn)], env=env, cwd=root).returncode
    with ThreadPoolExecutor(2) as pool: rcs = list(pool.map(one, fns))
    subprocess.run([Path(sys.executable).parent/'nbdev-clean'], cwd=root, check=True)
    failed = [str(f.relative_to(root)) for f, rc in zip(fns, rcs) if rc]
    print(f"{len(fns) - len(failed)} of {len(fns)} notebooks saved with their outputs in {time.time() - t0:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ''))
    if failed: sys.exit(1)
    clean = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'tests/test_notebooks.py'], cwd=root, capture_output=True, text=True)
    if clean.returncode: sys.exit(f"what a reader would see is not clean (tests/test_notebooks.py):\n{clean.stdout[-3000:]}")

if __name__ == '__main__': main(sys.argv[1:])
