"""Edit notebooks as text: `python tools/nbpy.py out nbs/04_cam.ipynb` writes `nbs/04_cam.ipynb.py`, one cell after
each `# %% [code] <id>` / `# %% [markdown] <id>` line; edit it; `python tools/nbpy.py in nbs/04_cam.ipynb.py` writes
the notebook back, keeping each cell's id (and its outputs while its source is unchanged), then deletes the text file.
A new cell is a `# %% [code]` or `# %% [markdown]` line with no id."""
import json, re, sys, uuid
from pathlib import Path

HEAD = re.compile(r'^# %% \[(code|markdown)\](?: (\S+))?$')

def to_text(nb:Path)->Path:
    cells = json.loads(nb.read_text())['cells']
    out = Path(f'{nb}.py')
    out.write_text(''.join(f"# %% [{c['cell_type']}] {c.get('id', '')}\n{''.join(c['source'])}\n" for c in cells))
    return out

def from_text(txt:Path)->Path:
    nb = Path(str(txt)[:-3])
    d = json.loads(nb.read_text()) if nb.exists() else dict(cells=[], metadata={'kernelspec': {'display_name': 'python3',
        'language': 'python', 'name': 'python3'}}, nbformat=4, nbformat_minor=5)
    old = {c.get('id'): c for c in d['cells']}
    cells, cur = [], None
    for line in txt.read_text().splitlines(keepends=True):
        m = HEAD.match(line.rstrip('\n'))
        if m: cur = [m[1], m[2] or uuid.uuid4().hex[:8], []]; cells.append(cur); continue
        if cur is None: raise SystemExit(f'{txt}: text before the first cell marker')
        cur[2].append(line)
    new = []
    for kind, cid, lines in cells:
        src = ''.join(lines)
        src = src[:-1] if src.endswith('\n') else src
        c = dict(cell_type=kind, id=cid, metadata={}, source=src.splitlines(keepends=True))
        o = old.get(cid)
        if kind == 'code':
            same = o is not None and ''.join(o['source']) == src and o['cell_type'] == 'code'
            c.update(execution_count=None, outputs=o.get('outputs', []) if same else [])
        new.append(c)
    d['cells'] = new
    nb.write_text(json.dumps(d, indent=1, ensure_ascii=False) + '\n')
    txt.unlink()
    return nb

if __name__ == '__main__':
    cmd, *files = sys.argv[1:]
    for f in files: print({'out': to_text, 'in': from_text}[cmd](Path(f)))
