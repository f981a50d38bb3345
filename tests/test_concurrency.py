"Several processes asking for the bundled data at once, on a fresh folder: each gets the whole set, and nothing is corrupt."
import hashlib, json, subprocess, sys, time
import numpy as np, pandas as pd
from fastcam.data import pet_image, BOX_COLS
from fastcam.text import bundled_reviews

WORKER = '''
import hashlib, json, sys, time
from pathlib import Path
from PIL import Image
import numpy as np
from fastcam.data import pets_dls
from fastcam.text import bundled_reviews
path, start, until = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
time.sleep(max(0, start - time.time()))                           # the processes start a second apart: drawing overlaps reading
dls = pets_dls(n=600, size=32, path=path/'pets', num_workers=0)
files = sorted(map(str, dls.train.items + dls.valid.items))
while True:                                                       # read the set again and again while the others may still write it
    h = hashlib.md5()
    for f in files:
        with Image.open(f) as im: h.update(np.asarray(im.convert('RGB')).tobytes())    # a half-written PNG raises here
    if time.time() > until: break
texts = (bundled_reviews(500, path=path/'reviews')/'texts.csv').read_text()
print(json.dumps(dict(files=[Path(f).name for f in files], pixels=h.hexdigest(), texts=hashlib.md5(texts.encode()).hexdigest())))
'''

def test_three_processes_draw_one_set(tmp_path):
    start = time.time() + 12                                       # after the three have imported fastai
    procs = [subprocess.Popen([sys.executable, '-c', WORKER, str(tmp_path), str(start + k), str(start + 8)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for k in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs): assert p.returncode == 0, err[-3000:]
    res = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    boxes = pd.read_csv(tmp_path/'pets'/'boxes.csv')
    assert list(boxes.columns) == BOX_COLS and len(boxes) == 600
    h = hashlib.md5()                                              # the pixels as drawn in this process
    for f in sorted(boxes.file.tolist()): h.update(np.asarray(pet_image(boxes.file.tolist().index(f), 32)[0]).tobytes())
    assert all(r == res[0] for r in res) and res[0]['files'] == sorted(boxes.file) and res[0]['pixels'] == h.hexdigest()
    alone = (bundled_reviews(500, path=tmp_path/'alone')/'texts.csv').read_text()
    assert res[0]['texts'] == hashlib.md5(alone.encode()).hexdigest()
    assert sorted(o.name for o in (tmp_path/'pets').rglob('.*') if o.name != '.lock') == []   # no temporary files left
