"""What storing Adam's state in bfloat16 or int8 costs in accuracy: training curves and the state's error.

    python bench/optim_state_quality.py    # writes the "optim_state_quality" section of bench/RESULTS.md
                                           # and docs/figures/state_*.png

1. Training: spiral, moons and digits, an MLP per dataset, Adam with float32, bfloat16 and int8 state
   (every parameter low-bit: lowbit_min_size=0), the same seeds for every state dtype.
2. The state: Adam's moments after training digits in float32, encoded in bfloat16 and int8, and their
   error, per block size.
3. The dynamic map itself.
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np
from results import check_args, repo_root, table, write_section

ROOT = repo_root()
sys.path.insert(0, str(ROOT))
FIGURES = ROOT / "docs" / "figures"
STATE_DTYPES = ["float32", "bfloat16", "int8"]
SEEDS = [0, 1, 2]
# dataset -> (hidden sizes, epochs, batch size, lr)
RUNS = {"spiral": ([64, 64], 60, 32, 1e-2), "moons": ([32, 32], 40, 32, 1e-2), "digits": ([64], 30, 32, 1e-3)}


def load(dataset: str, seed: int):
    from tinygrad_lite import data

    if dataset == "digits":
        X, y = data.load_digits(standardize=True)
        X_train, X_test, y_train, y_test = data.train_test_split(X, y, 0.2, seed=seed)
        return X_train.astype(np.float32), y_train, X_test.astype(np.float32), y_test
    make = {"spiral": data.make_spiral, "moons": data.make_moons}[dataset]
    X, y = make(600, seed=seed)
    return X.astype(np.float32), y, X[:0].astype(np.float32), y[:0]


def train(dataset: str, seed: int, state_dtype: str, **optimizer_options) -> dict:
    """Loss per epoch and final train/test accuracy of one run."""
    from tinygrad_lite import Tensor, data, manual_seed, nn, optim
    from tinygrad_lite.loop import fit
    from tinygrad_lite.train import evaluate, mlp

    hidden, epochs, batch_size, lr = RUNS[dataset]
    manual_seed(seed)
    X, y, X_test, y_test = load(dataset, seed)
    model = mlp([X.shape[1], *hidden, int(y.max()) + 1])
    options = {} if state_dtype == "float32" else dict(state_dtype=state_dtype, lowbit_min_size=0)
    optimizer = optim.Adam(model.parameters(), lr=lr, **options, **optimizer_options)
    loader = data.DataLoader(X, y, batch_size=batch_size, shuffle=True, seed=seed)
    loss_fn = nn.CrossEntropyLoss()
    losses: list[float] = []
    fit(optimizer, loader, lambda xb, yb: loss_fn(model(Tensor(xb)), yb), epochs=epochs,
        on_epoch=lambda _: losses.append(evaluate(model, X, y, False)[0]))  # J on the whole training set
    accuracy = evaluate(model, X, y, False)[1]
    test_accuracy = evaluate(model, X_test, y_test, False)[1] if len(X_test) else float("nan")
    return {"losses": losses, "accuracy": accuracy, "test_accuracy": test_accuracy, "optimizer": optimizer}


def training_runs() -> dict:
    results = {}
    for dataset in RUNS:
        for seed in SEEDS:
            for state_dtype in STATE_DTYPES:
                run = train(dataset, seed, state_dtype)
                run.pop("optimizer")
                results[dataset, seed, state_dtype] = run
                print(dataset, seed, state_dtype, f"loss {run['losses'][-1]:.4f} accuracy {run['accuracy']:.3f}",
                      flush=True)
    return results


def state_errors() -> dict:
    """Adam's float32 moments after training digits, and their error when stored in 16 or 8 bits."""
    from tinygrad_lite.optim import lowbit

    run = train("digits", 0, "float32")
    state = list(run["optimizer"].state.values())
    first = np.concatenate([s["exp_avg"].reshape(-1) for s in state]).astype(np.float32)
    second = np.concatenate([s["exp_avg_sq"].reshape(-1) for s in state]).astype(np.float32)
    out = {"first": first, "second": second, "by_block": {}}
    for name, moment, signed in (("first", first, True), ("second", second, False)):
        nonzero = moment[moment != 0]
        for dtype, decoded in (
                ("bfloat16", lowbit.bfloat16_decode(lowbit.bfloat16_encode(nonzero))),
                ("int8", lowbit.dequantize_blockwise(*lowbit.quantize_blockwise(nonzero, signed), signed))):
            out[f"{name} {dtype}"] = np.abs(decoded.astype(np.float64) - nonzero) / np.abs(nonzero)
        for block_size in (32, 64, 128, 256, 512, 1024, 4096, moment.size):
            decoded = lowbit.dequantize_blockwise(*lowbit.quantize_blockwise(moment, signed, block_size), signed,
                                                  block_size)
            relative = np.abs(decoded - moment) / np.maximum(np.abs(moment), 1e-30)
            out["by_block"][name, block_size] = (float(np.sqrt(np.mean((decoded - moment) ** 2))),
                                                 float(np.median(relative[moment != 0])))
    return out


def figures(results: dict, errors: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tinygrad_lite.optim import lowbit

    FIGURES.mkdir(parents=True, exist_ok=True)
    # the dynamic map
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, signed in zip(axes, (True, False)):
        values = lowbit.dynamic_map(signed)
        ax.semilogy(np.arange(256), np.abs(values), ".", markersize=3)
        ax.set_title(f"{'signed' if signed else 'unsigned'} dynamic map (first / second moments)")
        ax.set_xlabel("code")
        ax.set_ylabel("|value| (times the block's absmax)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(FIGURES / "state_dynamic_map.png", dpi=110)
    plt.close(fig)
    # error histograms and error against block size
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, name in zip(axes[:2], ("first", "second")):
        bins = np.linspace(-9, 1, 101)
        for dtype in ("bfloat16", "int8"):
            error = errors[f"{name} {dtype}"]
            ax.hist(np.log10(np.maximum(error, 1e-9)), bins=bins, alpha=0.6, label=dtype)
        ax.set_title(f"Adam's {name} moment after training digits")
        ax.set_xlabel("log10 relative error |decoded - x| / |x|")
        ax.set_ylabel("values")
        ax.legend()
    ax = axes[2]
    for name in ("first", "second"):
        sizes = sorted(b for (n, b) in errors["by_block"] if n == name)
        ax.loglog(sizes, [errors["by_block"][name, b][1] for b in sizes], "o-", label=f"{name} moment")
    ax.set_xlabel("block size (the last point: one block for the whole buffer)")
    ax.set_ylabel("median relative error of int8")
    ax.set_title("int8 error against block size")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(FIGURES / "state_error.png", dpi=110)
    plt.close(fig)
    if not results:
        return
    # training curves
    fig, axes = plt.subplots(1, len(RUNS), figsize=(5 * len(RUNS), 3.6))
    for ax, dataset in zip(axes, RUNS):
        for state_dtype, style in zip(STATE_DTYPES, ("-", "--", ":")):
            for seed in SEEDS:
                losses = results[dataset, seed, state_dtype]["losses"]
                ax.semilogy(range(1, len(losses) + 1), losses, style, color=f"C{STATE_DTYPES.index(state_dtype)}",
                            label=state_dtype if seed == SEEDS[0] else None)
        ax.set_title(f"{dataset}: Adam, seeds {SEEDS}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss J")
        ax.legend()
    fig.tight_layout()
    fig.savefig(FIGURES / "state_training.png", dpi=110)
    plt.close(fig)


def report(results: dict, errors: dict) -> None:
    rows = []
    worst = {dtype: [0.0, 0.0, 0] for dtype in STATE_DTYPES[1:]}  # largest relative gap, absolute gap, accuracy moves
    for dataset in RUNS:
        for seed in SEEDS:
            base = results[dataset, seed, "float32"]
            for state_dtype in STATE_DTYPES:
                run = results[dataset, seed, state_dtype]
                gap = run["losses"][-1] - base["losses"][-1]
                if state_dtype != "float32":
                    w = worst[state_dtype]
                    w[0], w[1] = max(w[0], abs(gap) / base["losses"][-1]), max(w[1], abs(gap))
                    w[2] += run["accuracy"] != base["accuracy"]
                test = "-" if math.isnan(run["test_accuracy"]) else f"{run['test_accuracy']:.3f}"
                rows.append([dataset, str(seed), state_dtype, f"{run['losses'][-1]:.4f}", f"{gap:+.4f}",
                             f"{gap / base['losses'][-1]:+.1%}", f"{run['accuracy']:.3f}", test])
    blocks = [[name, str(b), f"{errors['by_block'][name, b][0]:.3g}", f"{errors['by_block'][name, b][1]:.3g}"]
              for (name, b) in sorted(errors["by_block"])]
    load = os.getloadavg()
    body = "\n".join([
        "Adam (lr and epochs per dataset in bench/optim_state_quality.py) with its state in float32, bfloat16 and "
        "int8 (every parameter low-bit, `lowbit_min_size=0`), seeds " + ", ".join(map(str, SEEDS)) + ". "
        "The loss is J on the whole training set after the last epoch; 'gap' is it minus float32's, same seed. "
        "Figure: docs/figures/state_training.png. " + " ".join(
            f"{dtype}: largest gap {w[1]:.4f} ({w[0]:.0%} of float32's loss), train accuracy different from "
            f"float32's in {w[2]} of {len(RUNS) * len(SEEDS)} runs." for dtype, w in worst.items())
        + f" Load average when written: {load[0]:.2f} (nothing here is timed).",
        "",
        table(["dataset", "seed", "state", "final loss", "gap", "gap / float32", "train accuracy", "test accuracy"],
              rows),
        "",
        "Adam's moments after training digits in float32, stored in int8 with each block size (the last: one "
        "block for the whole buffer): RMS error and median relative error of the nonzero values.",
        "",
        table(["moment", "block size", "RMS error", "median relative error"], blocks),
    ])
    write_section("optim_state_quality", body, command="python bench/optim_state_quality.py")


def main() -> None:
    errors = state_errors()
    results = training_runs()
    figures(results, errors)
    report(results, errors)


if __name__ == "__main__":
    check_args(__doc__, {})
    main()
