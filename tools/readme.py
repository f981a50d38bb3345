"Write README.md from nbs/index.ipynb (nbdev-readme needs Quarto, which these machines don't have)."
import json
from pathlib import Path

root = Path(__file__).resolve().parent.parent

NOTEBOOK_ONLY = '<!-- notebook only -->'   # a markdown cell that reads a figure of the notebook's, which the README doesn't show

def cell_md(c):
    src = ''.join(c['source']).strip()
    if c['cell_type'] == 'markdown':
        return None if src.startswith(NOTEBOOK_ONLY) else src.replace('](images/', '](nbs/images/')   # the notebook's images, from the repo's root
    if src.startswith('#| hide') or not src: return None
    return '```python\n' + '\n'.join(l.removesuffix(';') for l in src.splitlines() if not l.startswith('#|')).strip() + '\n```'

def readme(nb=root/'nbs'/'index.ipynb'):
    "The README text for the cells of `nb`"
    cells = json.loads(Path(nb).read_text())['cells']
    parts = [p for p in map(cell_md, cells) if p]
    return '<!-- generated from nbs/index.ipynb by tools/readme.py: edit the notebook -->\n\n' + '\n\n'.join(parts) + '\n'

if __name__ == '__main__': (root/'README.md').write_text(readme())
