"""What localise-then-classify costs, measured in one run: the course model (`pets_learner`) on 400 images of the harder
bundled set (192 px, animals 12–25 % of the side, classified at 96 px).

`localise_then_classify(..., baselines=False)` is one pass that makes the maps and the full-image predictions, then one
pass over the crops (cut from the files, resized by the learner's own transforms). Its time is printed beside one
`learn.get_preds` over the same images (goal: ≤ 2.5×), median of `--reps`, alternating. Run `python bench/bench_uses.py`."""
import argparse, statistics, time, warnings
warnings.filterwarnings('ignore')

def main(reps, methods):
    import pandas as pd, torch
    from fastcam.all import pets_learner, bundled_pets, localise_then_classify
    learn = pets_learner()
    root = bundled_pets(400, 192, animal=(.12, .25), seed=1)
    dl = learn.dls.test_dl([root/'images'/f for f in pd.read_csv(root/'boxes.csv').file], with_labels=True)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads; {len(dl.items)} images of 192 px, classified at 96 px')
    times = {'get_preds': [], **{m: [] for m in methods}}
    for _ in range(reps):
        t = time.perf_counter()
        with learn.no_bar(): learn.get_preds(dl=dl)
        times['get_preds'].append(time.perf_counter() - t)
        for m in methods:
            t = time.perf_counter()
            with learn.no_bar(): localise_then_classify(learn, dl, [m], layer=None if m == 'cam' else -2, baselines=False)
            times[m].append(time.perf_counter() - t)
    base = statistics.median(times['get_preds'])
    print(f"get_preds: {base:.2f} s")
    for m in methods:
        t = statistics.median(times[m])
        print(f"localise_then_classify with {m}: {t:.2f} s = {t / base:.2f}× get_preds (goal ≤ 2.5×)")

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--reps', type=int, default=3)
    p.add_argument('--methods', default='cam,gradcam,layercam')
    a = p.parse_args()
    main(a.reps, a.methods.split(','))
