"""TopLossCAM under fastai's distributed training, for real: two CPU processes (torch.distributed.run, gloo, fastai's
`distrib_ctx(cpu=True)`) against one process with the same weights and data."""
import json, subprocess, sys
from pathlib import Path
import pandas as pd, torch
from torchvision.models import resnet18
from fastai.torch_core import set_seed
from fastcam.data import pets_dls
from fastcam.learner import cam_learner
from fastcam.callback import load_cams

def test_toplosscam_two_processes_equal_one(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', '29517',
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
    for res in ranks:                                                        # both processes hold the whole set's top five
        assert res['idxs'] == top.indices.tolist() and res['inside_idxs'] == top.indices.tolist()
        torch.testing.assert_close(torch.tensor(res['losses']), top.values, rtol=0, atol=1e-5)
        torch.testing.assert_close(torch.tensor(res['inside_losses']), top.values, rtol=0, atol=1e-5)
        torch.testing.assert_close(torch.tensor(res['maps']), single.maps, rtol=0, atol=1e-4 * single.maps.abs().max().item())
        torch.testing.assert_close(torch.tensor(res['inside_maps']), single.maps, rtol=0, atol=1e-4 * single.maps.abs().max().item())
    assert ranks[0]['saves'] == [str(tmp_path/'cams')] and ranks[1]['saves'] == []   # the files: the first process only
    saved, idx = load_cams(tmp_path/'cams'), pd.read_csv(tmp_path/'cams'/'index.csv')
    assert saved.idxs.tolist() == top.indices.tolist() and idx.item.tolist() == [str(dls.valid.items[i]) for i in top.indices.tolist()]
    assert len(set(saved.idxs.tolist())) == 5                                # no item twice (the padding repeats items)
