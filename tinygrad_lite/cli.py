"""The `tinygrad-lite` command. Each subcommand parses its options here and calls the library.

Exit status 2 with one line on stderr means the user got something wrong: a flag's value, or a file or
folder they named (the --resume checkpoint, the --out folder), or matplotlib missing for a plotting
command. Every such check happens here, before the work, or converts one specific library error
(`train.ResumeError`) into a UsageError. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from types import ModuleType

from tinygrad_lite import data, plots
from tinygrad_lite import train as training
from tinygrad_lite.optim import registry
from tinygrad_lite.optim.base import DEFAULT_BACKEND
from tinygrad_lite.studies import batches, compare, ema, race, schedules
from tinygrad_lite.surfaces import SURFACES


class UsageError(Exception):
    """Bad command-line input: reported as one line on stderr with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage over several lines; we want one
        raise UsageError(f"{self.prog}: {message}")


def _shown(value: object) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join("full" if v is None else str(v) for v in value)
    return str(value)


class _HelpFormatter(argparse.HelpFormatter):
    """Appends each option's default to its help, written as it would be typed (64,64 rather than (64, 64))."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is False or action.default == argparse.SUPPRESS:
            return text
        return text if "default" in text else f"{text} (default {_shown(action.default)})"


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


_non_negative_int = _seed  # --warmup's check is the seed's


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _optimizer(text: str) -> str:
    try:
        registry.canonical(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _names(text: str, vocabulary: ModuleType = registry) -> list[str]:
    """Comma-separated names from `vocabulary` (the registry, or `race`, which adds its METHODS such as newton)."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in vocabulary.names()]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected comma-separated optimizers from {','.join(vocabulary.names())}, "
                                         f"got {text!r}")
    rules = [vocabulary.canonical(n) for n in names]
    twice = [n for n, rule in zip(names, rules) if rules.count(rule) > 1]
    if twice:
        raise argparse.ArgumentTypeError(f"{' and '.join(dict.fromkeys(twice))} name the same optimizer in {text!r}")
    return names


def _schedule_names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names or any(n not in training.SCHEDULES for n in names) or len(set(names)) < len(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated distinct schedules from "
                                         f"{','.join(training.SCHEDULES)}, got {text!r}")
    return names


def _race_names(text: str) -> list[str]:
    return _names(text, race)


def _race_learning_rates(text: str) -> float | dict[str, float]:
    return _learning_rates(text, race)


def _learning_rates(text: str, vocabulary: ModuleType = registry) -> float | dict[str, float]:
    """'0.01' for every optimizer, or per optimizer: 'adam=0.05,gd=0.001' (names from `vocabulary`)."""
    if "=" not in text:
        rate = _float(text)
        if not rate > 0:
            raise argparse.ArgumentTypeError(f"expected a learning rate > 0, got {text!r}")
        return rate
    rates = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in vocabulary.names():
            raise argparse.ArgumentTypeError(f"unknown optimizer {name!r} in {text!r}, expected one of "
                                             f"{','.join(vocabulary.names())}")
        rate = _float(value)
        if not rate > 0:
            raise argparse.ArgumentTypeError(f"expected a learning rate > 0 for {name}, got {value!r}")
        rates[vocabulary.canonical(name)] = rate  # keyed by rule, so gd=... also sets the rate of sgd
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


def _non_negative_float(text: str) -> float:
    value = _float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _per_optimizer(rates: float | dict[str, float] | None, optimizers: Sequence[str],
                   vocabulary: ModuleType = registry) -> dict[str, float] | None:
    return {vocabulary.canonical(name): rates for name in optimizers} if isinstance(rates, float) else rates


def _wrote(*paths: str) -> None:
    print("wrote " + ", ".join(paths))


def _require_matplotlib(args: argparse.Namespace) -> None:
    """A plotting command fails before its work, not after it, when matplotlib is missing."""
    try:
        plots.pyplot()
    except plots.MatplotlibMissing as error:
        raise UsageError(f"tinygrad-lite {args.command}: {error}") from None


def _output_folder(args: argparse.Namespace, folder: str | None = None) -> str:
    """Create `--out` (or `folder`) and check that a file can be made in it, so an unusable one fails now."""
    folder = args.out if folder is None else folder
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UsageError(f"tinygrad-lite {args.command}: --out {folder!r} is not a writable folder "
                         f"({error.strerror or error})") from None
    return folder


def build_parser() -> argparse.ArgumentParser:
    """The `tinygrad-lite` parser with one subcommand per job."""
    parser = _Parser(prog="tinygrad-lite", description="Train and study small networks with tinygrad_lite.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    defaults = training.TrainConfig()
    p = commands.add_parser("train", help="train an MLP on a toy or real dataset (the main job)",
                            formatter_class=_HelpFormatter)
    p.add_argument("--dataset", choices=sorted(training.DATASETS) + sorted(training.REAL_DATASETS),
                   default=defaults.dataset,
                   help="the data; digits, breast_cancer and wine need the data extra (scikit-learn)")
    p.add_argument("--samples", type=_positive_int, default=defaults.samples, help="dataset size of the toy datasets")
    p.add_argument("--test-fraction", type=_float, default=None, metavar="F",
                   help=f"share of the dataset held out to report test accuracy, seeded by --seed (default "
                        f"{training.REAL_TEST_FRACTION} for the real datasets, 0 for the toy ones)")
    p.add_argument("--hidden", type=_sizes, default=defaults.hidden, help="hidden sizes")
    p.add_argument("--optimizer", type=_optimizer, default=defaults.optimizer,
                   help=f"one of {','.join(registry.names())}; gd is sgd")
    p.add_argument("--lr", type=_float, default=None, help="learning rate (default " + _lr_defaults() + ")")
    for option, meaning in (("momentum", "sgd's momentum"), ("beta", "momentum's and rmsprop's beta"),
                            ("beta1", "the first of adam's, adamw's, nadam's and lion's betas"),
                            ("beta2", "the second of those betas"), ("weight-decay", "the rule's weight decay")):
        p.add_argument(f"--{option}", type=_float, default=None, metavar="X",
                       help=f"{meaning} (default the optimizer's own)")
    p.add_argument("--batch-size", type=_batch_size, default=defaults.batch_size,
                   help="examples per step; 'full' for batch gradient descent, 1 for SGD")
    p.add_argument("--epochs", type=_positive_int, default=defaults.epochs, help="passes over the dataset")
    p.add_argument("--seed", type=_seed, default=defaults.seed,
                   help="seeds the dataset, the initial weights and the shuffling")
    p.add_argument("--backend", choices=["numpy", "numba"], default=None,
                   help=f"optimizer backend (default {DEFAULT_BACKEND})")
    p.add_argument("--out", default=None,
                   help="folder for metrics.csv and checkpoint.safetensors (default the next free runs/train, "
                        "runs/train2, ...; with --resume, the checkpoint's folder)")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    p.add_argument("--save-every", type=_positive_int, default=None, metavar="N",
                   help="also write the checkpoint every N epochs (default only at the end, or when interrupted)")
    p.add_argument("--resume", default=None, metavar="PATH",
                   help="continue from a checkpoint written by a run with the same settings (default a new run)")
    p.add_argument("--schedule", choices=training.SCHEDULES, default=defaults.schedule,
                   help="lr schedule over the epochs: step (/10 at each third), cosine (to 0), onecycle, plateau "
                        "(halve when the test loss stalls) (default %(default)s)")
    p.add_argument("--warmup", type=_non_negative_int, default=defaults.warmup, metavar="N",
                   help="epochs of linear lr warm-up before the schedule (default %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(run=_train)
    _add_graph(commands)
    _add_race(commands)
    _add_ema(commands)
    _add_batches(commands)
    _add_compare(commands)
    _add_schedules(commands)
    _add_sweep(commands)
    return parser


def _lr_defaults() -> str:
    """The registry's default learning rates as --help shows them: 'adam=0.01,...; sgd=0.1 on blobs, ...'."""
    rules = ",".join(f"{name}={registry.default_lr(name):g}" for name in registry.names(aliases=False))
    exceptions = ", ".join(f"{name}={lr:g} on {dataset}" for (dataset, name), lr in registry.DATASET_LR.items())
    return rules + (f"; {exceptions}" if exceptions else "")


def _train(args: argparse.Namespace) -> int:
    if args.test_fraction is not None and not 0 <= args.test_fraction < 1:
        raise UsageError(f"tinygrad-lite train: --test-fraction must be in [0, 1), got {args.test_fraction}")
    if args.lr is not None and args.lr < 0:
        raise UsageError(f"tinygrad-lite train: --lr must be >= 0, got {args.lr}")
    if args.warmup >= args.epochs:
        raise UsageError(f"tinygrad-lite train: --warmup must be less than --epochs ({args.epochs}), got "
                         f"{args.warmup}")
    if args.warmup and args.schedule == "plateau":
        raise UsageError("tinygrad-lite train: --warmup cannot come before --schedule plateau")
    if args.out and training.holds_run(args.out) and not (args.resume or args.overwrite):
        raise UsageError(f"tinygrad-lite train: --out {args.out!r} already holds a run; add --resume to continue "
                         "it or --overwrite to replace it")
    options = {option: getattr(args, option) for option in training.RULE_OPTIONS}
    try:  # the optimizer's own checks, on a stand-in parameter, before any folder is made
        training.check_rule_options(args.optimizer, [option for option, value in options.items() if value is not None],
                                    subject=f"--optimizer {args.optimizer}",
                                    spell=lambda option: "--" + option.replace("_", "-"))
        training.check_optimizer(training.TrainConfig(dataset=args.dataset, optimizer=args.optimizer, lr=args.lr,
                                                      **options).resolved())
    except ValueError as error:
        raise UsageError(f"tinygrad-lite train: {error}") from None
    numbered = None
    if args.out:
        _output_folder(args)
    elif args.out == "":  # --out '': write nothing
        args.out = None
    elif args.resume:
        args.out = os.path.dirname(args.resume) or "."  # a resumed run continues in its own folder
    else:
        try:
            numbered = args.out = _output_folder(args, training.next_free_folder("runs/train"))
        except OSError as error:
            raise UsageError(f"tinygrad-lite train: cannot create a folder under runs/ ({error.strerror or error})"
                             ) from None
    config = training.TrainConfig(
        dataset=args.dataset, samples=args.samples, hidden=args.hidden, optimizer=args.optimizer, lr=args.lr,
        batch_size=args.batch_size, epochs=args.epochs, seed=args.seed, backend=args.backend, out=args.out,
        overwrite=True, progress=not args.no_progress, resume=args.resume, save_every=args.save_every,
        test_fraction=args.test_fraction, schedule=args.schedule, warmup=args.warmup,
        **options,
    ).resolved()
    try:
        return _run_train(args, config)
    finally:
        if numbered is not None:  # a numbered folder nothing was written into (an error, an early Ctrl-C) goes
            with contextlib.suppress(OSError):
                os.rmdir(numbered)  # only ever removes an empty folder


def _run_train(args: argparse.Namespace, config: training.TrainConfig) -> int:
    try:
        result = training.train(config, on_start=_announce)
    except data.ScikitLearnMissing as error:
        raise UsageError(f"tinygrad-lite train: --dataset {config.dataset}: {error}") from None
    except training.ResumeError as error:  # raised only for the --resume file, so never hides a bug
        message = error.describe(f"--epochs {config.epochs}") if isinstance(error, training.ResumePastEpochs) else error
        raise UsageError(f"tinygrad-lite train: {message}") from None
    except training.Interrupted as stop:
        if stop.checkpoint is None:
            print(f"tinygrad-lite train: {stop}; no epoch had ended, nothing was saved", file=sys.stderr)
        else:
            again = [*_resumable(args.argv), "--resume", stop.checkpoint]
            print(f"tinygrad-lite train: {stop}; resume with: {shlex.join(['tinygrad-lite', *again])}",
                  file=sys.stderr)
        return stop.exit_status
    final = result.final
    accuracy = "" if final["accuracy"] != final["accuracy"] else f"  accuracy {final['accuracy']:.4f}"
    test = f"  test accuracy {final['test_accuracy']:.4f}" if final.get("test_accuracy", float("nan")) >= 0 else ""
    print(f"final loss {final['loss']:.4f}{accuracy}{test}  ({final['seconds']:.1f} s, {config.epochs} epochs)")
    if config.out:
        print(f"wrote {config.out}/{training.METRICS} and {config.out}/{training.CHECKPOINT}")
    return 0


def _announce(config: training.TrainConfig, first_epoch: int) -> None:
    """The resolved settings, printed before the first epoch."""
    start = f", from epoch {first_epoch}" if first_epoch > 1 else ""
    samples = f" ({config.samples} samples)" if config.dataset in training.DATASETS else ""
    schedule = "" if config.schedule == "constant" else f" ({config.schedule} schedule)"
    warmup = f" after {config.warmup} warm-up epochs" if config.warmup else ""
    options = "".join(f", {name} {value}" for name, value in training.optimizer_options(config).items())
    print(f"train: {config.optimizer} lr {config.lr:g}{options}{schedule}{warmup}, "
          f"batch size {config.batch_size or 'full'}, "
          f"backend {config.backend}; {config.dataset}{samples}, {config.epochs} epochs{start}"
          + (f" -> {config.out}" if config.out else ""), flush=True)


def _resumable(argv: Sequence[str]) -> list[str]:
    """The command line without --resume and --overwrite, to which the resume hint adds its own --resume."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--resume":
            skip = True
        elif not (arg.startswith("--resume=") or arg == "--overwrite"):
            kept.append(arg)
    return kept


def _add_graph(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("graph", help="draw the graph of a small MLP's loss (Graphviz DOT, SVG or PNG)",
                            formatter_class=_HelpFormatter)
    p.add_argument("--out", default="runs/graph", help="folder for mlp_loss.dot and the picture")
    p.add_argument("--detail", choices=["shapes", "values"], default="shapes",
                   help="shapes and dtypes only, or also the data and grads")
    p.add_argument("--format", choices=["svg", "png"], default="svg", help="picture format when dot is installed")
    p.add_argument("--seed", type=_seed, default=0, help="seeds the weights and the mini-batch")
    p.set_defaults(run=_graph)


def _graph(args: argparse.Namespace) -> None:
    from tinygrad_lite.studies.mlp_graph import draw_mlp_loss

    written, note = draw_mlp_loss(_output_folder(args), detail=args.detail, image_format=args.format,
                                  seed=args.seed)
    print("wrote " + " and ".join(str(path) for path in written))
    if note:
        print(note)


def _add_race(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("race", help="optimizer paths over the contours of a 2-D loss surface",
                            formatter_class=_HelpFormatter)
    p.add_argument("--surface", choices=list(SURFACES), default="beale", help="the loss surface")
    p.add_argument("--optimizers", type=_race_names, default=list(race.ARTICLE_OPTIMIZERS),
                   help=f"comma-separated, from {','.join(race.names())} (newton: damped Newton with the exact "
                        "Hessian, a race-only method)")
    p.add_argument("--steps", type=_positive_int, default=None,
                   help="steps per optimizer (default per surface: "
                        + ", ".join(f"{name} {s.steps}" for name, s in SURFACES.items()) + ")")
    p.add_argument("--lr", type=_race_learning_rates, default=None,
                   help="one rate for all, or per optimizer: adam=0.05,gd=0.001 (default tuned per surface, in "
                        "tinygrad_lite/surfaces.py; a rule without one there takes its train default; newton 1, "
                        "its first trial step)")
    p.add_argument("--start", type=_point, default=None,
                   help="x,y (default per surface: "
                        + ", ".join(f"{name} {_shown(s.start)}" for name, s in SURFACES.items()) + ")")
    p.add_argument("--out", default="runs/race", help="folder for race.png, race.csv and race.gif")
    p.add_argument("--gif", action="store_true", help="also write race.gif, the paths growing over time")
    p.set_defaults(run=_race)


def _race(args: argparse.Namespace) -> None:
    _require_matplotlib(args)
    _output_folder(args)
    result = race.race(SURFACES[args.surface], args.optimizers, args.steps,
                       _per_optimizer(args.lr, args.optimizers, race), args.start)
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
    p = commands.add_parser("ema", help="moving averages of a noisy series, with and without bias correction",
                            formatter_class=_HelpFormatter)
    p.add_argument("--points", type=_positive_int, default=365, help="length of the series")
    p.add_argument("--betas", type=_betas, default=ema.DEFAULT_BETAS, help="comma-separated")
    p.add_argument("--seed", type=_seed, default=0, help="seeds the noise")
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
    p = commands.add_parser("batches", help="batch, mini-batch and stochastic gradient descent on one MLP",
                            formatter_class=_HelpFormatter)
    p.add_argument("--sizes", type=_batch_sizes, default=batches.DEFAULT_BATCH_SIZES,
                   help="comma-separated batch sizes, 'full' for the whole dataset")
    p.add_argument("--dataset", choices=sorted(set(training.DATASETS) - {"regression"}), default="moons",
                   help="the data")
    p.add_argument("--samples", type=_positive_int, default=1024, help="dataset size")
    p.add_argument("--hidden", type=_sizes, default=(32, 32), help="hidden sizes")
    p.add_argument("--optimizer", type=_optimizer, default="gd", help=f"one of {','.join(registry.names())}")
    p.add_argument("--lr", type=_positive_float, default=None,
                   help="learning rate (default the optimizer's for the dataset: " + _lr_defaults() + ")")
    p.add_argument("--epochs", type=_positive_int, default=20, help="passes over the dataset")
    p.add_argument("--evals-per-epoch", type=_positive_int, default=4, help="how often J is logged")
    p.add_argument("--seconds", type=_non_negative_float, default=1.0,
                   help="time budget: each batch size trains at least this long, past --epochs if need be, so the "
                        "per-second panel compares equal times")
    p.add_argument("--max-seconds", type=_positive_float, default=None,
                   help="cap on each run's training time (default no cap)")
    p.add_argument("--seed", type=_seed, default=0, help="seeds the dataset, the weights and the shuffling")
    p.add_argument("--out", default="runs/batches", help="folder for batches.png and batches.csv")
    p.set_defaults(run=_batches)


def _batches(args: argparse.Namespace) -> None:
    if not args.sizes:
        raise UsageError("tinygrad-lite batches: --sizes is empty")
    _require_matplotlib(args)
    _output_folder(args)
    study = batches.batch_study(args.sizes, dataset=args.dataset, samples=args.samples, hidden=args.hidden,
                                optimizer=args.optimizer, lr=args.lr, epochs=args.epochs,
                                evals_per_epoch=args.evals_per_epoch, max_seconds=args.max_seconds,
                                seconds=args.seconds, seed=args.seed, progress=True)
    png, csv_path = os.path.join(args.out, "batches.png"), os.path.join(args.out, "batches.csv")
    study.write_csv(csv_path)
    plots.plot_batches(study, png)
    for size, curve in zip(study.sizes, study.curves):
        print(f"{study.label(size):>20}: loss {curve.losses[-1]:.4f} after {curve.epochs[-1]:g} epochs, "
              f"{curve.seconds[-1]:.2f} s")
    _wrote(png, csv_path)


def _add_network_options(p: argparse.ArgumentParser, batch_size: int) -> None:
    """The data, network and training length of the one MLP that compare and schedules train once per run."""
    p.add_argument("--dataset", choices=sorted(set(training.DATASETS) - {"regression"}), default="spiral",
                   help="the data")
    p.add_argument("--samples", type=_positive_int, default=300, help="dataset size")
    p.add_argument("--hidden", type=_sizes, default=(64, 64), help="hidden sizes")
    p.add_argument("--batch-size", type=_batch_size, default=batch_size, help="examples per step; 'full' for batch GD")
    p.add_argument("--epochs", type=_positive_int, default=100, help="passes over the dataset")
    p.add_argument("--seed", type=_seed, default=0, help="seeds the dataset, the weights and the shuffling")


def _add_compare(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("compare", help="loss curves of GD, Momentum, RMSProp and Adam on one network",
                            formatter_class=_HelpFormatter)
    p.add_argument("--optimizers", type=_names, default=list(race.ARTICLE_OPTIMIZERS),
                   help=f"comma-separated, from {','.join(registry.names())}")
    p.add_argument("--lr", type=_learning_rates, default=None,
                   help="one rate for all, or per optimizer: adam=0.01,gd=0.5 (default " + _lr_defaults() + ")")
    _add_network_options(p, batch_size=64)
    p.add_argument("--target", type=_positive_float, default=0.1, help="the loss to reach")
    p.add_argument("--out", default="runs/compare", help="folder for compare.png, compare.csv, compare_targets.csv")
    p.set_defaults(run=_compare)


def _compare(args: argparse.Namespace) -> None:
    _require_matplotlib(args)
    _output_folder(args)
    result = compare.compare(tuple(args.optimizers), _per_optimizer(args.lr, args.optimizers), dataset=args.dataset,
                             samples=args.samples, hidden=args.hidden, batch_size=args.batch_size,
                             epochs=args.epochs, target=args.target, seed=args.seed, progress=True)
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


def _add_schedules(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("schedules", help="the lr and the loss of one network under constant, step, cosine and "
                            "one-cycle schedules", formatter_class=_HelpFormatter)
    p.add_argument("--schedules", type=_schedule_names, default=list(schedules.DEFAULT_SCHEDULES),
                   help=f"comma-separated, from {','.join(training.SCHEDULES)}, as train --schedule builds them")
    p.add_argument("--warmup", type=_non_negative_int, default=0, metavar="N",
                   help="epochs of linear lr warm-up in front of every schedule")
    p.add_argument("--optimizer", type=_optimizer, default="gd", help=f"one of {','.join(registry.names())}")
    p.add_argument("--lr", type=_positive_float, default=None,
                   help=f"the base lr of every schedule (default {schedules.LR_FACTOR:g} times the optimizer's "
                        "train default for the dataset: 1 for gd on spiral)")
    _add_network_options(p, batch_size=32)
    p.add_argument("--out", default="runs/schedules", help="folder for schedules.png and schedules.csv")
    p.set_defaults(run=_schedules)


def _schedules(args: argparse.Namespace) -> None:
    if args.warmup >= args.epochs:
        raise UsageError(f"tinygrad-lite schedules: --warmup must be less than --epochs ({args.epochs}), got "
                         f"{args.warmup}")
    if args.warmup and "plateau" in args.schedules:
        raise UsageError("tinygrad-lite schedules: --warmup cannot come before the plateau schedule")
    _require_matplotlib(args)
    _output_folder(args)
    study = schedules.schedule_study(tuple(args.schedules), dataset=args.dataset, samples=args.samples,
                                     hidden=args.hidden, optimizer=args.optimizer, lr=args.lr,
                                     batch_size=args.batch_size, epochs=args.epochs, warmup=args.warmup,
                                     seed=args.seed, progress=True)
    png, csv_path = os.path.join(args.out, "schedules.png"), os.path.join(args.out, "schedules.csv")
    study.write_csv(csv_path)
    plots.plot_schedules(study, png)
    for name, lrs, curve in zip(study.schedules, study.lrs, study.curves):
        print(f"{name:>9}: lr {lrs[0]:.3g} -> {lrs[-1]:.3g} (peak {max(lrs):.3g}), J {curve.losses[-1]:.4f} after "
              f"{len(curve.losses) - 1} epochs")
    _wrote(png, csv_path)


def _add_sweep(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("sweep", help="search hyperparameters with Optuna, locally or on a Dask cluster")
    p.add_argument("--dataset", choices=sorted(training.DATASETS) + sorted(training.REAL_DATASETS), default="spiral",
                   help="default %(default)s")
    p.add_argument("--space", default=None, metavar="FILE",
                   help="TOML file, one table per hyperparameter (default: every optimizer x lr x betas x batch "
                        "size x hidden sizes; see docs/sweeps.md)")
    p.add_argument("--trials", type=_positive_int, default=None,
                   help="trials to finish in the study, earlier runs' included (default 40; grid: the whole grid)")
    p.add_argument("--timeout", type=_positive_float, default=None, metavar="S",
                   help="start no new trial after S seconds (default: no limit)")
    p.add_argument("--sampler", choices=["grid", "random", "tpe"], default="tpe", help="default %(default)s")
    p.add_argument("--pruner", choices=["none", "median", "hyperband"], default="median", help="default %(default)s")
    p.add_argument("--seed", type=_seed, default=0,
                   help="seeds the sampler and every trial's data, weights and shuffling (default %(default)s)")
    p.add_argument("--workers", type=_positive_int, default=1, metavar="K",
                   help="local worker processes, each running one trial at a time (default %(default)s)")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="an Optuna RDB URL or a journal file path (default OUT/study.journal)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the trials on a Dask cluster, e.g. tcp://10.0.0.5:8786, instead of --workers "
                        "(default: local)")
    p.add_argument("--out", default="runs/sweep",
                   help="folder for the study, results.csv, best.json and figures (default %(default)s); "
                        "re-running the same command there continues the study")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(run=_sweep)


def _sweep(args: argparse.Namespace) -> int:
    try:
        from tinygrad_lite import sweep
        from tinygrad_lite.sweep import report
    except ImportError as error:
        raise UsageError(f'tinygrad-lite sweep: needs {error.name}: pip install "tinygrad_lite[sweep]"') from None
    try:
        space = sweep.space.load(args.space) if args.space else sweep.space.default()
        _output_folder(args)
        result = sweep.run(dataset=args.dataset, space=space, trials=args.trials, timeout=args.timeout,
                           sampler=args.sampler, pruner=args.pruner, seed=args.seed, workers=args.workers,
                           storage=args.storage, scheduler=args.scheduler, out=args.out,
                           progress=not args.no_progress)
    except (sweep.SpaceError, sweep.SweepError) as error:
        raise UsageError(f"tinygrad-lite sweep: {error}") from None
    except KeyboardInterrupt:
        print(f"tinygrad-lite sweep: interrupted; the finished trials are kept in {args.out!r}, and re-running the "
              "same command continues the study", file=sys.stderr)
        return 130
    states = [row["state"] for row in result.rows]
    print(f"{len(states)} trials: " + ", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states))))
    print(report.top(result.rows, space))
    if result.best is not None:
        print(f"best: trial {result.best['number']}, validation loss {result.best['val_loss']:.4g}")
    _wrote(*(os.path.join(args.out, name) for name in ("results.csv", "best.json")))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad input, with one line on stderr).

    Only UsageError becomes status 2; any other exception propagates with its traceback (status 1). Output
    into a pipe that closed early (`tinygrad-lite race | head -1`) ends quietly with status 0, and Ctrl-C
    prints one line and returns 130.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
        args.argv = argv
        status = args.run(args) or 0
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's own flush at exit
    except UsageError as error:
        print(str(error).replace("\n", " "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C in a command that has nothing to save (train handles its own)
        print(" ".join(["tinygrad-lite", *argv[:1]]) + ": interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Whoever read our output has stopped; later writes (and the flush at exit) must not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return status
