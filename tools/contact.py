"""A contact sheet of the notebooks, for a reviewer: `python tools/contact.py [OUT]` (default `contact/`).

What a learner sees of a notebook is mostly its figures and the text around them. `OUT/index.html` puts every figure
of every saved notebook on one page, each beside the markdown cell before it (what the reader is told to look for)
and the one after it (what the figure is said to show), so a figure that contradicts its caption, or has none, shows
at a glance. With `--shots`, each notebook is also rendered as GitHub would (`jupyter nbconvert --to html`) and
screenshot in headless Chromium (`apt-get install chromium`): `OUT/NAME.png`, the whole page.
"""
import base64, html, json, shutil, subprocess, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent

def notebooks():
    return sorted((root/'nbs'/'course').glob('[!_.]*.ipynb')) + sorted((root/'nbs').glob('[!_.]*.ipynb'))

def figures(fn:Path)->list: # (markdown before, png as base64, markdown after) per figure
    "Every PNG a notebook shows, with the markdown cells on either side of its cell"
    cells, res = json.loads(fn.read_text())['cells'], []
    md = lambda c: ''.join(c['source']) if c['cell_type'] == 'markdown' else ''
    for i, c in enumerate(cells):
        if c['cell_type'] != 'code': continue
        for o in c['outputs']:
            png = o.get('data', {}).get('image/png')
            if png is None: continue
            before = next((md(cells[j]) for j in range(i - 1, -1, -1) if cells[j]['cell_type'] == 'markdown'), '')
            after = md(cells[i + 1]) if i + 1 < len(cells) else ''
            res.append((before, ''.join(png), after))
    return res

def page(out:Path)->Path:
    "OUT/index.html: each notebook's figures, each between the text before and after it"
    parts = ['<!DOCTYPE html><meta charset="utf-8"><title>fastcam: the notebooks\' figures</title>',
             '<style>body{font:13px system-ui;margin:1em} .f{display:flex;gap:1em;border-top:1px solid #ccc;padding:.6em 0}'
             ' .t{width:32em;white-space:pre-wrap;color:#333} .a{color:#063} img{max-width:640px}</style>']
    for fn in notebooks():
        figs = figures(fn)
        parts.append(f'<h2>{html.escape(str(fn.relative_to(root)))}: {len(figs)} figures</h2>')
        for before, png, after in figs:
            parts.append(f'<div class="f"><div class="t">{html.escape(before[-900:])}</div><img src="data:image/png;base64,{png}">'
                         f'<div class="t a">{html.escape(after[:900]) or "<b>NO TEXT AFTER THIS FIGURE</b>"}</div></div>')
    out.mkdir(parents=True, exist_ok=True)
    (out/'index.html').write_text('\n'.join(parts))
    return out/'index.html'

def shots(out:Path):
    "Each notebook as nbconvert renders it, screenshot whole in headless Chromium"
    chrome = shutil.which('chromium') or shutil.which('chromium-browser') or shutil.which('google-chrome')
    if chrome is None: sys.exit('no Chromium: apt-get install chromium')
    for fn in notebooks():
        name = fn.stem if fn.parent.name == 'nbs' else f'course_{fn.stem}'
        subprocess.run([sys.executable, '-m', 'nbconvert', '--to', 'html', '--output-dir', str(out), '--output', name, str(fn)],
                       check=True, capture_output=True)
        h = len(json.loads(fn.read_text())['cells']) * 260 + 2000                 # tall enough for the whole notebook
        subprocess.run([chrome, '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--disable-background-networking',
                        f'--screenshot={out/name}.png', f'--window-size=1100,{h}', (out/f'{name}.html').as_uri()], check=True, capture_output=True)
        print(out/f'{name}.png')

if __name__ == '__main__':
    args = [a for a in sys.argv[1:] if not a.startswith('--')]
    out = Path(args[0]) if args else root/'contact'
    print(page(out))
    if '--shots' in sys.argv: shots(out)
