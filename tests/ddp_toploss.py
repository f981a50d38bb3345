"""Run by tests/test_distributed.py under `torch.distributed.run` (2 CPU processes, gloo): TopLossCAM during fastai's
distributed training and `top_losses_cam` inside the context; each rank writes what it got, rank 0 the final weights;
then a fit whose save fails in rank 0, and what each rank raised.
Usage: python -m torch.distributed.run --nproc_per_node 2 tests/ddp_toploss.py OUT"""
import json, os, sys
from pathlib import Path
import torch, torch.distributed as dist
from fastai.distributed import DistributedDL

def _broadcast(self, t, rank):
    "fastai broadcasts the item order as a CUDA tensor (nccl needs one); with gloo on CPUs a broadcast of the list does the same"
    o = [list(t)]; dist.broadcast_object_list(o, rank); return o[0]
DistributedDL._broadcast = _broadcast

from torchvision.models import resnet18
from fastai.torch_core import set_seed
from fastcam.data import pets_dls
from fastcam.learner import cam_learner
from fastcam.callback import TopLossCAM, TopLosses

out = Path(sys.argv[1]); rank = int(os.environ['RANK'])
saves, real_save = [], TopLosses.save
def save(self, path): saves.append(str(path)); return real_save(self, path)
TopLosses.save = save                                              # who writes files: rank 0 only
set_seed(0, reproducible=True)
dls = pets_dls(n=205, size=32, path=out/'pets', bs=16, num_workers=0)   # 41 validation images: the last rank's share is padded
learn = cam_learner(dls, resnet18, pretrained=False, path=out, cbs=TopLossCAM(k=5), bf16=False)
with learn.distrib_ctx(sync_bn=False, cpu=True):
    learn.fit(1, 1e-3)
    inside = learn.top_losses_cam(45)                              # inside the context, on every rank: more than the 41 items, so all are kept
res = learn.top_loss_cam.result
(out/f'rank{rank}.json').write_text(json.dumps(dict(idxs=res.idxs.tolist(), losses=res.losses.tolist(), maps=res.maps.tolist(),
    saves=saves, inside_idxs=inside.idxs.tolist(), inside_losses=inside.losses.tolist(), inside_maps=inside.maps.tolist())))
if rank == 0: learn.save('final')                                  # for the test's run in one process

def full(self, path): raise OSError('No space left on device')
TopLosses.save = full                                              # the first process can't save: every process says so, none waits
try:
    with learn.distrib_ctx(sync_bn=False, cpu=True): learn.fit(1, 1e-3)
    caught = None
except Exception as e: caught = f'{type(e).__name__}: {e}'
(out/f'fail{rank}.json').write_text(json.dumps(caught))
# accelerate made the process group inside `distrib_ctx` and nothing takes it down: left to the interpreter's exit,
# gloo's threads aborted the first process ("terminate called without an active exception") in 3 runs of 10
if dist.is_initialized(): dist.barrier(); dist.destroy_process_group()
