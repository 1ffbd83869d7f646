"""The `tinygrad-lite` command. Each subcommand parses its options here and calls the library.

Exit status 2 with one line on stderr means the user got something wrong: a flag's value, or a file or
folder they named (the --resume checkpoint, the --out folder), or matplotlib missing for a plotting
command. Every such check happens here, before the work, or converts one specific library error
(`train.ResumeError`) into a UsageError. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from collections.abc import Sequence

from tinygrad_lite import data, plots
from tinygrad_lite import train as training
from tinygrad_lite.optim.base import DEFAULT_BACKEND
from tinygrad_lite.studies import batches, compare, ema, race
from tinygrad_lite.surfaces import SURFACES


class UsageError(Exception):
    """Bad command-line input: reported as one line on stderr with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage over several lines; we want one
        raise UsageError(f"{self.prog}: {message}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _batch_size(text: str) -> int | None:
    return None if text in ("full", "all") else _positive_int(text)


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer sizes such as 64,64, got {text!r}") from None
    if any(n <= 0 for n in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {text!r}")
    return sizes


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in race.RACE_OPTIMIZERS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected comma-separated optimizers from {','.join(race.RACE_OPTIMIZERS)}, "
                                         f"got {text!r}")
    return names


def _learning_rates(text: str) -> float | dict[str, float]:
    """'0.01' for every optimizer, or per optimizer: 'adam=0.05,gd=0.001'."""
    if "=" not in text:
        rate = _float(text)
        if not rate > 0:
            raise argparse.ArgumentTypeError(f"expected a learning rate > 0, got {text!r}")
        return rate
    rates = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in race.RACE_OPTIMIZERS:
            raise argparse.ArgumentTypeError(f"unknown optimizer {name!r} in {text!r}, expected one of "
                                             f"{','.join(race.RACE_OPTIMIZERS)}")
        rates[name] = _float(value)
        if not rates[name] > 0:
            raise argparse.ArgumentTypeError(f"expected a learning rate > 0 for {name}, got {value!r}")
    return rates


def _point(text: str) -> tuple[float, float]:
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected a point x,y such as 1,1.5, got {text!r}")
    x, y = _float(parts[0]), _float(parts[1])
    if max(abs(x), abs(y)) > race.DIVERGED:  # such a path would count as diverged before its first step
        raise argparse.ArgumentTypeError(f"expected a point with |x| and |y| <= {race.DIVERGED:g}, got {text!r}")
    return x, y


def _betas(text: str) -> tuple[float, ...]:
    betas = tuple(_float(part) for part in text.split(",") if part.strip())
    if not betas or not all(0 <= b < 1 for b in betas):
        raise argparse.ArgumentTypeError(f"expected comma-separated betas in [0, 1), got {text!r}")
    return betas


def _batch_sizes(text: str) -> tuple[int | None, ...]:
    return tuple(_batch_size(part.strip()) for part in text.split(",") if part.strip())


def _positive_float(text: str) -> float:
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _per_optimizer(rates: float | dict[str, float] | None, optimizers: Sequence[str]) -> dict[str, float] | None:
    return {name: rates for name in optimizers} if isinstance(rates, float) else rates


def _wrote(*paths: str) -> None:
    print("wrote " + ", ".join(paths))


def _require_matplotlib(args: argparse.Namespace) -> None:
    """A plotting command fails before its work, not after it, when matplotlib is missing."""
    try:
        plots.pyplot()
    except plots.MatplotlibMissing as error:
        raise UsageError(f"tinygrad-lite {args.command}: {error}") from None


def _output_folder(args: argparse.Namespace) -> str:
    """Create `--out` and check that a file can be made in it, so an unusable folder fails before the work."""
    try:
        os.makedirs(args.out, exist_ok=True)
        with tempfile.TemporaryFile(dir=args.out):
            pass
    except OSError as error:
        raise UsageError(f"tinygrad-lite {args.command}: --out {args.out!r} is not a writable folder "
                         f"({error.strerror or error})") from None
    return args.out


def build_parser() -> argparse.ArgumentParser:
    """The `tinygrad-lite` parser with one subcommand per job."""
    parser = _Parser(prog="tinygrad-lite", description="Train and study small networks with tinygrad_lite.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    defaults = training.TrainConfig()
    p = commands.add_parser("train", help="train an MLP on a toy or real dataset (the main job)")
    p.add_argument("--dataset", choices=sorted(training.DATASETS) + sorted(training.REAL_DATASETS),
                   default=defaults.dataset,
                   help="default %(default)s; digits, breast_cancer and wine need the data extra (scikit-learn)")
    p.add_argument("--samples", type=_positive_int, default=defaults.samples,
                   help="dataset size of the toy datasets (default %(default)s)")
    p.add_argument("--test-fraction", type=_float, default=None, metavar="F",
                   help=f"share of the dataset held out to report test accuracy, seeded by --seed (default "
                        f"{training.REAL_TEST_FRACTION} for the real datasets, 0 for the toy ones)")
    p.add_argument("--hidden", type=_sizes, default=defaults.hidden,
                   help="hidden sizes (default " + ",".join(map(str, defaults.hidden)) + ")")
    p.add_argument("--optimizer", choices=sorted(training.OPTIMIZERS), default=defaults.optimizer,
                   help="default %(default)s")
    p.add_argument("--lr", type=_float, default=None,
                   help="learning rate (default depends on the optimizer and dataset)")
    p.add_argument("--batch-size", type=_batch_size, default=defaults.batch_size,
                   help="examples per step; 'full' for batch gradient descent, 1 for SGD (default %(default)s)")
    p.add_argument("--epochs", type=_positive_int, default=defaults.epochs,
                   help="passes over the dataset (default %(default)s)")
    p.add_argument("--seed", type=_seed, default=defaults.seed,
                   help="seeds the dataset, the initial weights and the shuffling (default %(default)s)")
    p.add_argument("--backend", choices=["numpy", "numba"], default=None,
                   help=f"optimizer backend (default {DEFAULT_BACKEND})")
    p.add_argument("--out", default=defaults.out,
                   help="folder for metrics.csv and checkpoint.safetensors (default %(default)s)")
    p.add_argument("--save-every", type=_positive_int, default=None, metavar="N",
                   help="also write the checkpoint every N epochs (it is always written at the end)")
    p.add_argument("--resume", default=None, metavar="PATH",
                   help="continue from a checkpoint written by a run with the same settings")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(run=_train)
    _add_graph(commands)
    _add_race(commands)
    _add_ema(commands)
    _add_batches(commands)
    _add_compare(commands)
    return parser


def _train(args: argparse.Namespace) -> None:
    config = training.TrainConfig(
        dataset=args.dataset, samples=args.samples, hidden=args.hidden, optimizer=args.optimizer, lr=args.lr,
        batch_size=args.batch_size, epochs=args.epochs, seed=args.seed, backend=args.backend, out=args.out,
        progress=not args.no_progress, resume=args.resume, save_every=args.save_every,
        test_fraction=args.test_fraction,
    )
    if config.test_fraction is not None and not 0 <= config.test_fraction < 1:
        raise UsageError(f"tinygrad-lite train: --test-fraction must be in [0, 1), got {config.test_fraction}")
    if config.lr is not None and config.lr < 0:
        raise UsageError(f"tinygrad-lite train: --lr must be >= 0, got {config.lr}")
    if config.out:
        _output_folder(args)
    try:
        result = training.train(config)
    except data.ScikitLearnMissing as error:
        raise UsageError(f"tinygrad-lite train: --dataset {config.dataset}: {error}") from None
    except training.ResumeError as error:  # raised only for the --resume file, so never hides a bug
        message = error.describe(f"--epochs {config.epochs}") if isinstance(error, training.ResumePastEpochs) else error
        raise UsageError(f"tinygrad-lite train: {message}") from None
    final = result.final
    accuracy = "" if final["accuracy"] != final["accuracy"] else f"  accuracy {final['accuracy']:.4f}"
    test = f"  test accuracy {final['test_accuracy']:.4f}" if final.get("test_accuracy", float("nan")) >= 0 else ""
    print(f"final loss {final['loss']:.4f}{accuracy}{test}  ({final['seconds']:.1f} s, {config.epochs} epochs)")
    if config.out:
        print(f"wrote {config.out}/metrics.csv and {config.out}/{training.CHECKPOINT}")


def _add_graph(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("graph", help="draw the graph of a small MLP's loss (Graphviz DOT, SVG or PNG)")
    p.add_argument("--out", default="runs/graph", help="folder for mlp_loss.dot and the picture")
    p.add_argument("--detail", choices=["shapes", "values"], default="shapes",
                   help="shapes and dtypes only, or also the data and grads")
    p.add_argument("--format", choices=["svg", "png"], default="svg", help="picture format when dot is installed")
    p.add_argument("--seed", type=_seed, default=0)
    p.set_defaults(run=_graph)


def _graph(args: argparse.Namespace) -> None:
    from tinygrad_lite.studies.mlp_graph import draw_mlp_loss

    written, note = draw_mlp_loss(_output_folder(args), detail=args.detail, image_format=args.format,
                                  seed=args.seed)
    print("wrote " + " and ".join(str(path) for path in written))
    if note:
        print(note)


def _add_race(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("race", help="optimizer paths over the contours of a 2-D loss surface")
    p.add_argument("--surface", choices=list(SURFACES), default="beale")
    p.add_argument("--optimizers", type=_names, default=list(race.RACE_OPTIMIZERS),
                   help="comma-separated, from gd,momentum,rmsprop,adam")
    p.add_argument("--steps", type=_positive_int, default=None, help="default depends on the surface")
    p.add_argument("--lr", type=_learning_rates, default=None,
                   help="one rate for all, or per optimizer: adam=0.05,gd=0.001 (defaults depend on the surface)")
    p.add_argument("--start", type=_point, default=None, help="x,y (default depends on the surface)")
    p.add_argument("--out", default="runs/race", help="folder for race.png, race.csv and race.gif")
    p.add_argument("--gif", action="store_true", help="also write race.gif, the paths growing over time")
    p.set_defaults(run=_race)


def _race(args: argparse.Namespace) -> None:
    _require_matplotlib(args)
    _output_folder(args)
    result = race.race(SURFACES[args.surface], args.optimizers, args.steps, _per_optimizer(args.lr, args.optimizers),
                       args.start)
    png, csv_path = os.path.join(args.out, "race.png"), os.path.join(args.out, "race.csv")
    gif = os.path.join(args.out, "race.gif") if args.gif else None
    result.write_csv(csv_path)
    plots.plot_race(result, png, gif)
    for path in result.paths:
        x, y = path.final
        print(f"{path.optimizer:>9} lr {path.lr:<7g} final ({x:.4f}, {y:.4f})  loss {path.losses[-1]:.4g}"
              + ("  diverged" if path.diverged else ""))
    _wrote(png, csv_path, *([gif] if gif else []))


def _add_ema(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("ema", help="moving averages of a noisy series, with and without bias correction")
    p.add_argument("--points", type=_positive_int, default=365, help="length of the series")
    p.add_argument("--betas", type=_betas, default=ema.DEFAULT_BETAS, help="comma-separated, e.g. 0.5,0.9,0.98")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--out", default="runs/ema", help="folder for ema.png and ema.csv")
    p.set_defaults(run=_ema)


def _ema(args: argparse.Namespace) -> None:
    _require_matplotlib(args)
    _output_folder(args)
    result = ema.ema_study(args.points, args.betas, args.seed)
    png, csv_path = os.path.join(args.out, "ema.png"), os.path.join(args.out, "ema.csv")
    result.write_csv(csv_path)
    plots.plot_ema(result, png)
    _wrote(png, csv_path)


def _add_batches(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("batches", help="batch, mini-batch and stochastic gradient descent on one MLP")
    p.add_argument("--sizes", type=_batch_sizes, default=batches.DEFAULT_BATCH_SIZES,
                   help="comma-separated batch sizes, 'full' for the whole dataset (default full,512,256,128,64,1)")
    p.add_argument("--dataset", choices=sorted(set(training.DATASETS) - {"regression"}), default="moons")
    p.add_argument("--samples", type=_positive_int, default=1024, help="dataset size")
    p.add_argument("--hidden", type=_sizes, default=(32, 32), help="hidden sizes, e.g. 32,32")
    p.add_argument("--optimizer", choices=list(race.RACE_OPTIMIZERS), default="gd")
    p.add_argument("--lr", type=_positive_float, default=0.1)
    p.add_argument("--epochs", type=_positive_int, default=20)
    p.add_argument("--evals-per-epoch", type=_positive_int, default=4, help="how often J is logged")
    p.add_argument("--max-seconds", type=_positive_float, default=None, help="cap on each run's training time")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--out", default="runs/batches", help="folder for batches.png and batches.csv")
    p.set_defaults(run=_batches)


def _batches(args: argparse.Namespace) -> None:
    if not args.sizes:
        raise UsageError("tinygrad-lite batches: --sizes is empty")
    _require_matplotlib(args)
    _output_folder(args)
    study = batches.batch_study(args.sizes, dataset=args.dataset, samples=args.samples, hidden=args.hidden,
                                optimizer=args.optimizer, lr=args.lr, epochs=args.epochs,
                                evals_per_epoch=args.evals_per_epoch, max_seconds=args.max_seconds, seed=args.seed)
    png, csv_path = os.path.join(args.out, "batches.png"), os.path.join(args.out, "batches.csv")
    study.write_csv(csv_path)
    plots.plot_batches(study, png)
    for size, curve in zip(study.sizes, study.curves):
        print(f"{study.label(size):>20}: loss {curve.losses[-1]:.4f} after {curve.epochs[-1]:g} epochs, "
              f"{curve.seconds[-1]:.2f} s")
    _wrote(png, csv_path)


def _add_compare(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("compare", help="loss curves of GD, Momentum, RMSProp and Adam on one network")
    p.add_argument("--optimizers", type=_names, default=list(compare.DEFAULT_LR),
                   help="comma-separated, from gd,momentum,rmsprop,adam")
    p.add_argument("--lr", type=_learning_rates, default=None,
                   help="one rate for all, or per optimizer: adam=0.01,gd=0.5 (default "
                        + ",".join(f"{k}={v:g}" for k, v in compare.DEFAULT_LR.items()) + "; "
                        + ", ".join(f"{'gd' if name == 'sgd' else name}={lr:g} on {dataset}"
                                    for (dataset, name), lr in training.DATASET_LR.items() if dataset != "regression")
                        + ")")
    p.add_argument("--dataset", choices=sorted(set(training.DATASETS) - {"regression"}), default="spiral")
    p.add_argument("--samples", type=_positive_int, default=300, help="dataset size")
    p.add_argument("--hidden", type=_sizes, default=(64, 64), help="hidden sizes, e.g. 64,64")
    p.add_argument("--batch-size", type=_batch_size, default=64, help="examples per step; 'full' for batch GD")
    p.add_argument("--epochs", type=_positive_int, default=100)
    p.add_argument("--target", type=_positive_float, default=0.1, help="the loss to reach")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--out", default="runs/compare", help="folder for compare.png, compare.csv, compare_targets.csv")
    p.set_defaults(run=_compare)


def _compare(args: argparse.Namespace) -> None:
    _require_matplotlib(args)
    _output_folder(args)
    result = compare.compare(tuple(args.optimizers), _per_optimizer(args.lr, args.optimizers), dataset=args.dataset,
                             samples=args.samples, hidden=args.hidden, batch_size=args.batch_size,
                             epochs=args.epochs, target=args.target, seed=args.seed)
    png = os.path.join(args.out, "compare.png")
    csv_path, table_path = os.path.join(args.out, "compare.csv"), os.path.join(args.out, "compare_targets.csv")
    result.write_csv(csv_path)
    result.write_targets(table_path)
    plots.plot_compare(result, png)
    print(f"{'optimizer':>9}  {'lr':>7}  {'steps to J<=' + format(result.target, 'g'):>16}  {'seconds':>8}  final J")
    for name, lr, steps, seconds, final in result.to_target():
        print(f"{name:>9}  {lr:>7g}  {'never' if steps is None else steps:>16}  "
              f"{'-' if seconds is None else format(seconds, '.3f'):>8}  {final:.4f}")
    _wrote(png, csv_path, table_path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad input, with one line on stderr).

    Only UsageError becomes status 2; any other exception propagates with its traceback (status 1).
    """
    try:
        args = build_parser().parse_args(argv)
        args.run(args)
    except UsageError as error:
        print(str(error).replace("\n", " "), file=sys.stderr)
        return 2
    return 0
