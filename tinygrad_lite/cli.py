"""The `tinygrad-lite` command. Each subcommand parses its options here and calls the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tinygrad_lite import train as training


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


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tinygrad-lite", description="Train and study small networks with tinygrad_lite.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    defaults = training.TrainConfig()
    p = commands.add_parser("train", help="train an MLP on a toy dataset (the main job)")
    p.add_argument("--dataset", choices=sorted(training.DATASETS), default=defaults.dataset)
    p.add_argument("--samples", type=_positive_int, default=defaults.samples, help="dataset size")
    p.add_argument("--hidden", type=_sizes, default=defaults.hidden, help="hidden sizes, e.g. 64,64")
    p.add_argument("--optimizer", choices=sorted(training.OPTIMIZERS), default=defaults.optimizer)
    p.add_argument("--lr", type=_float, default=None, help="learning rate (default depends on the optimizer)")
    p.add_argument("--batch-size", type=_batch_size, default=defaults.batch_size,
                   help="examples per step; 'full' for batch gradient descent, 1 for SGD")
    p.add_argument("--epochs", type=_positive_int, default=defaults.epochs)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--backend", choices=["numpy", "numba"], default=None, help="optimizer backend")
    p.add_argument("--out", default=defaults.out, help="folder for metrics.csv and checkpoint.safetensors")
    p.add_argument("--save-every", type=_positive_int, default=None, metavar="N",
                   help="also write the checkpoint every N epochs (it is always written at the end)")
    p.add_argument("--resume", default=None, metavar="PATH",
                   help="continue from a checkpoint written by a run with the same settings")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(run=_train)
    return parser


def _train(args: argparse.Namespace) -> None:
    config = training.TrainConfig(
        dataset=args.dataset, samples=args.samples, hidden=args.hidden, optimizer=args.optimizer, lr=args.lr,
        batch_size=args.batch_size, epochs=args.epochs, seed=args.seed, backend=args.backend, out=args.out,
        progress=not args.no_progress, resume=args.resume, save_every=args.save_every,
    )
    if config.lr is not None and config.lr < 0:
        raise UsageError(f"tinygrad-lite train: --lr must be >= 0, got {config.lr}")
    result = training.train(config)
    final = result.final
    accuracy = "" if final["accuracy"] != final["accuracy"] else f"  accuracy {final['accuracy']:.4f}"
    print(f"final loss {final['loss']:.4f}{accuracy}  ({final['seconds']:.1f} s, {config.epochs} epochs)")
    if config.out:
        print(f"wrote {config.out}/metrics.csv and {config.out}/{training.CHECKPOINT}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad input, with one line on stderr)."""
    try:
        args = build_parser().parse_args(argv)
        args.run(args)
    except UsageError as error:
        print(error, file=sys.stderr)
        return 2
    except (ValueError, OSError) as error:
        print(f"tinygrad-lite: error: {error}".replace("\n", " "), file=sys.stderr)
        return 2
    return 0
