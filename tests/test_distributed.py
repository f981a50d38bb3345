"""TopLossCAM under fastai's distributed training, for real: two CPU processes (torch.distributed.run, gloo, fastai's
`distrib_ctx(cpu=True)`) against one process with the same weights and data."""
import json, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd, torch
from torchvision.models import resnet18
from fastai.torch_core import set_seed
from fastcam.data import pets_dls
from fastcam.learner import cam_learner
from fastcam.callback import load_cams

def test_toplosscam_two_processes_equal_one(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--standalone',
                        str(Path(__file__).parent/'ddp_toploss.py'), str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    ranks = [json.loads((tmp_path/f'rank{i}.json').read_text()) for i in (0, 1)]
    set_seed(0, reproducible=True)
    dls = pets_dls(n=205, size=32, path=tmp_path/'pets', bs=16, num_workers=0)
    assert len(dls.valid_ds) == 41                                           # odd: the second process's share is padded
    learn = cam_learner(dls, resnet18, pretrained=False, path=tmp_path, cbs=[], bf16=False)
    learn.load('final')                                                      # the weights the two processes ended with
    with learn.no_bar(): _, _, losses = learn.get_preds(with_loss=True)
    top = losses.topk(5)
    single = learn.top_losses_cam(5)
    assert single.idxs.tolist() == top.indices.tolist()
    every = learn.top_losses_cam(45)                                         # all 41, by loss
    assert sorted(every.idxs.tolist()) == list(range(41))
    for res in ranks:                                                        # both processes hold the whole set's top five
        assert res['idxs'] == top.indices.tolist()
        torch.testing.assert_close(torch.tensor(res['losses']), top.values, rtol=0, atol=1e-5)
        torch.testing.assert_close(torch.tensor(res['maps']), single.maps, rtol=0, atol=1e-4 * single.maps.abs().max().item())
        assert res['inside_idxs'] == every.idxs.tolist()                     # each item once: the padding (a repeat) dropped
        torch.testing.assert_close(torch.tensor(res['inside_losses']), every.losses, rtol=0, atol=1e-5)
        torch.testing.assert_close(torch.tensor(res['inside_maps']), every.maps, rtol=0, atol=1e-4 * every.maps.abs().max().item())
    assert ranks[0]['saves'] == [str(tmp_path/'cams')] and ranks[1]['saves'] == []   # the files: the first process only
    saved, idx = load_cams(tmp_path/'cams'), pd.read_csv(tmp_path/'cams'/'index.csv')
    assert saved.idxs.tolist() == top.indices.tolist() and idx.item.tolist() == [str(dls.valid.items[i]) for i in top.indices.tolist()]
    assert len(set(saved.idxs.tolist())) == 5                                # no item twice (the padding repeats items)
    fail = [json.loads((tmp_path/f'fail{i}.json').read_text()) for i in (0, 1)]  # the first process's save failed: each raised
    assert fail[0].startswith('OSError: ') and fail[0].endswith('\tNo space left on device')    # as fastai words a callback's error
    assert fail[1].startswith('RuntimeError: ') and fail[1].endswith(
        '\tTopLossCAM: the first process could not make or save the maps (OSError: No space left on device); its own error says more')

FASTCAM = Path(sys.executable).parent/'fastcam'

def test_explain_two_processes_equal_one(tmp_path):
    "`torchrun --nproc_per_node 2 fastcam explain`: each process a share, the first merges one index equal to one process's"
    set_seed(0, reproducible=True)
    dls = pets_dls(n=120, size=32, path=tmp_path/'pets', bs=16, num_workers=0)
    cam_learner(dls, resnet18, pretrained=False, path=tmp_path, cbs=[], bf16=False).export(tmp_path/'model.pkl')
    imgs = tmp_path/'imgs'; (imgs/'sub').mkdir(parents=True)
    for i, f in enumerate(dls.valid.items[:21]): (imgs/('sub' if i % 3 else '')/Path(f).name).write_bytes(Path(f).read_bytes())
    (imgs/'broken.png').write_text('not an image'); (imgs/'notes.txt').write_text('skipped')
    args = ['explain', str(tmp_path/'model.pkl'), str(imgs), '--bs', '4']
    one = subprocess.run([str(FASTCAM), *args, '--out', str(tmp_path/'one')], capture_output=True, text=True)
    two = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--standalone', '--no-python',
                          str(FASTCAM), *args, '--out', str(tmp_path/'two'), '--num-workers', '1'], capture_output=True, text=True, timeout=600)
    assert one.returncode == 1 and two.returncode != 0, two.stderr[-3000:]     # the broken image: exit code 1, in each process
    assert [l for l in two.stdout.splitlines() if 'explained' in l] == [l.replace('/one/', '/two/') for l in one.stdout.splitlines() if 'explained' in l]  # one summary: the first process's
    a, b = (pd.read_csv(tmp_path/o/'index.csv') for o in ('one', 'two'))
    assert len(a) == 23 and a.status.value_counts().to_dict() == dict(ok=21, failed=1, skipped=1)
    pd.testing.assert_frame_equal(a.drop(columns='probability'), b.drop(columns='probability'))   # same rows, same order
    assert (a.probability - b.probability).abs().max() <= 1e-4                 # batches of other images round differently
    for f in a.map_file.dropna():
        m1, m2 = np.load(tmp_path/'one'/f), np.load(tmp_path/'two'/f)
        assert np.abs(m1 - m2).max() <= 1e-4 * np.abs(m1).max()
    assert sorted(o.name for o in (tmp_path/'two').rglob('.*')) == []         # partial indexes and temporary files gone
    again = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--standalone', '--no-python',
                            str(FASTCAM), *args, '--out', str(tmp_path/'two')], capture_output=True, text=True, timeout=600)
    assert '0 explained, 21 kept from an earlier run, 1 failed, 1 skipped' in again.stdout, again.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path/'two'/'index.csv'), b)
