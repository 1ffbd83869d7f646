"""Where the command line draws the line: what the user got wrong is one stderr line and exit status 2;
anything else (a bug in training, plotting or checkpointing) keeps its type and traceback.

test_errors.py holds the catalogue of usage errors; these tests cover the ones that used to reach status 2
only through a blanket `except (ValueError, OSError)` in `main`, and show that other errors now propagate.
"""

import subprocess
import sys
from pathlib import Path

import pytest

import tinygrad_lite
from tinygrad_lite import checkpoint, cli, nn, optim
from tinygrad_lite import train as training
from tinygrad_lite.studies import batches, compare, ema, mlp_graph, race

ROOT = Path(__file__).parents[1]
SMALL_TRAIN = ["train", "--samples", "30", "--hidden", "4", "--no-progress"]
PLOTTING = {"race", "ema", "batches", "compare"}
# Each command with options that keep its work to a fraction of a second.
QUICK = {
    "train": [*SMALL_TRAIN, "--epochs", "1"],
    "race": ["race", "--steps", "3", "--optimizers", "gd"],
    "ema": ["ema", "--points", "10"],
    "batches": ["batches", "--sizes", "full", "--samples", "20", "--hidden", "4", "--epochs", "1"],
    "compare": ["compare", "--optimizers", "gd", "--samples", "20", "--hidden", "4", "--epochs", "1"],
    "graph": ["graph"],
}


def _usage_error(capsys, argv):
    """Run the CLI in-process; assert status 2 with one stderr line, nothing on stdout; return that line."""
    status = cli.main(argv)
    out, err = capsys.readouterr()
    assert status == 2, err
    assert err.count("\n") == 1 and err.strip() and "Traceback" not in err, err
    assert out == ""
    return err.strip()


# ---- (a) the user's mistakes: one line, status 2 ----------------------------------------------------


FLAG_CASES = [
    # These reached a library ValueError (manual_seed, numpy's default_rng) before; now the parser refuses them.
    (["train", "--seed", "-1"], "--seed: expected a non-negative integer, got -1"),
    (["ema", "--seed", "-1"], "--seed: expected a non-negative integer"),
    (["batches", "--seed", "-2"], "--seed: expected a non-negative integer"),
    (["compare", "--seed", "-1"], "--seed: expected a non-negative integer"),
    (["graph", "--seed", "-1"], "--seed: expected a non-negative integer"),
    # A nan lr reached the optimizer's ValueError; inf start points and rates crashed matplotlib's contouring
    # and log axes with messages about NaN levels that said nothing of the flag.
    (["train", "--lr", "nan"], "--lr: expected a finite number, got 'nan'"),
    (["train", "--lr", "inf"], "--lr: expected a finite number"),
    (["race", "--start", "inf,1"], "--start: expected a finite number"),
    (["race", "--start", "1e300,1e300"], "|x| and |y| <= 1e+06"),
    (["race", "--lr", "adam=inf"], "--lr: expected a finite number"),
    (["batches", "--lr", "inf"], "--lr: expected a finite number"),
    (["compare", "--target", "nan"], "--target: expected a finite number"),
]


@pytest.mark.parametrize("argv, fragment", FLAG_CASES, ids=[" ".join(argv) for argv, _ in FLAG_CASES])
def test_flag_values_the_library_would_refuse_are_refused_by_the_parser(capsys, argv, fragment):
    line = _usage_error(capsys, argv)
    assert line.startswith(f"tinygrad-lite {argv[0]}: argument ") and fragment in line


@pytest.mark.parametrize("command", list(QUICK))
@pytest.mark.parametrize("blocker", ["a_file", "a_file/run"])
def test_an_out_that_is_not_a_folder_fails_before_the_work(tmp_path, capsys, command, blocker):
    if command in PLOTTING:
        pytest.importorskip("matplotlib")  # without it the command stops earlier, at the install hint
    (tmp_path / "a_file").write_text("x")
    line = _usage_error(capsys, [*QUICK[command], "--out", str(tmp_path / blocker)])
    assert line.startswith(f"tinygrad-lite {command}: --out ") and "a_file" in line
    assert "not a writable folder" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # and nothing was written anywhere


def test_a_read_only_out_fails_before_the_work_not_at_the_first_save(tmp_path, capsys):
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        try:
            (folder / "probe").touch()
        except PermissionError:
            pass
        else:
            pytest.skip("this user (root, or CAP_DAC_OVERRIDE) can write into a read-only folder")
        line = _usage_error(capsys, [*QUICK["train"], "--out", str(folder)])
    finally:
        folder.chmod(0o755)
    assert "read_only" in line and "Permission denied" in line
    assert not any(folder.iterdir())


@pytest.fixture
def run_checkpoint(tmp_path, capsys):
    """The checkpoint of a 2-epoch SMALL_TRAIN run."""
    assert cli.main([*SMALL_TRAIN, "--epochs", "2", "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    return tmp_path / "run" / training.CHECKPOINT


def test_resume_from_a_folder_names_it(tmp_path, capsys):
    line = _usage_error(capsys, [*QUICK["train"], "--out", "", "--resume", str(tmp_path)])
    assert line == f"tinygrad-lite train: resume: cannot read checkpoint {str(tmp_path)!r}: Is a directory"


def test_resume_from_a_checkpoint_not_written_by_train(tmp_path, capsys):
    plain = tmp_path / "plain.safetensors"
    checkpoint.save(plain, nn.Sequential(nn.Linear(2, 3)))
    line = _usage_error(capsys, [*QUICK["train"], "--out", "", "--resume", str(plain)])
    assert "plain.safetensors" in line and "not one written by `tinygrad-lite train`" in line


def test_resume_past_the_requested_epochs(run_checkpoint, capsys):
    line = _usage_error(capsys, [*SMALL_TRAIN, "--epochs", "1", "--out", "", "--resume", str(run_checkpoint)])
    assert "is at epoch 2, past --epochs 1" in line


def test_train_names_the_config_field_for_a_checkpoint_past_its_epochs(run_checkpoint):
    config = training.TrainConfig(samples=30, hidden=(4,), epochs=1, out=None, progress=False,
                                  resume=str(run_checkpoint))  # SMALL_TRAIN's settings
    with pytest.raises(training.ResumeError, match=r"is at epoch 2, past TrainConfig\.epochs=1$"):
        training.train(config)


def test_resume_from_a_checkpoint_whose_tensors_do_not_fit_the_model(run_checkpoint, tmp_path, capsys):
    # The right settings in the metadata, but the weights of another network: only the load can tell.
    tinygrad_lite.manual_seed(0)
    other = nn.Sequential(nn.Linear(2, 5), nn.ReLU(), nn.Linear(5, 3))
    misfit = tmp_path / "misfit.safetensors"
    checkpoint.save(misfit, other, optim.Adam(other.parameters()), **checkpoint.read_metadata(run_checkpoint))
    line = _usage_error(capsys, [*SMALL_TRAIN, "--epochs", "3", "--out", "", "--resume", str(misfit)])
    assert "misfit.safetensors" in line and "does not fit" in line and "0.weight" in line


def test_train_raises_resume_error_for_a_bad_resume_file_with_the_cause_chained(tmp_path):
    config = training.TrainConfig(samples=30, hidden=(4,), epochs=1, out=None, progress=False)
    with pytest.raises(training.ResumeError, match="does not exist") as missing:
        training.train(training.TrainConfig(**{**vars(config), "resume": str(tmp_path / "missing.safetensors")}))
    assert isinstance(missing.value, ValueError) and isinstance(missing.value.__cause__, FileNotFoundError)
    with pytest.raises(training.ResumeError, match="Is a directory") as folder:
        training.train(training.TrainConfig(**{**vars(config), "resume": str(tmp_path)}))
    assert isinstance(folder.value.__cause__, IsADirectoryError)


# ---- (b) everything else is a bug: it propagates ------------------------------------------------------


def _boom(error):
    def fail(*args, **kwargs):
        raise error

    return fail


@pytest.mark.parametrize("error", [ValueError("boom"), OSError(28, "No space left on device"),
                                   checkpoint.CheckpointError("boom")], ids=lambda error: type(error).__name__)
def test_an_error_inside_training_is_not_a_usage_error(tmp_path, monkeypatch, capsys, error):
    monkeypatch.setattr(training, "save_run", _boom(error))
    with pytest.raises(type(error)) as info:
        cli.main([*QUICK["train"], "--out", str(tmp_path)])
    assert info.value is error
    assert capsys.readouterr().err == ""


def test_an_error_inside_the_resume_load_that_is_not_about_the_file_propagates(run_checkpoint, monkeypatch):
    monkeypatch.setattr(checkpoint, "load", _boom(ValueError("boom")))
    with pytest.raises(ValueError, match="^boom$"):
        cli.main([*SMALL_TRAIN, "--epochs", "3", "--out", "", "--resume", str(run_checkpoint)])


@pytest.mark.parametrize("command, module, name", [
    ("race", race, "race"), ("ema", ema, "ema_study"), ("batches", batches, "batch_study"),
    ("compare", compare, "compare"), ("graph", mlp_graph, "draw_mlp_loss"),
])
def test_an_error_inside_a_study_is_not_a_usage_error(tmp_path, monkeypatch, capsys, command, module, name):
    if command in PLOTTING:
        pytest.importorskip("matplotlib")
    monkeypatch.setattr(module, name, _boom(ValueError("boom")))
    with pytest.raises(ValueError, match="^boom$"):
        cli.main([*QUICK[command], "--out", str(tmp_path)])
    assert capsys.readouterr().err == ""


def test_a_run_that_diverges_is_a_result_not_an_error(tmp_path, capsys):
    # Every run's loss is nan after its first step, which left the log-scaled seconds axis with no point to place.
    pytest.importorskip("matplotlib")
    assert cli.main([*QUICK["batches"], "--lr", "1e30", "--out", str(tmp_path)]) == 0
    assert "loss nan" in capsys.readouterr().out
    assert (tmp_path / "batches.png").stat().st_size > 0


def test_an_error_while_drawing_is_not_a_usage_error(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from tinygrad_lite import plots

    monkeypatch.setattr(plots, "plot_race", _boom(OSError(28, "No space left on device")))
    with pytest.raises(OSError, match="No space left"):
        cli.main([*QUICK["race"], "--out", str(tmp_path)])


BROKEN = """
import sys
from tinygrad_lite import train
from tinygrad_lite.cli import main

def broken(*args, **kwargs):
    raise ValueError("boom")

train.save_run = broken
sys.exit(main(sys.argv[1:]))
"""


def test_the_real_command_shows_the_traceback_of_an_internal_error_and_exits_1(tmp_path):
    done = subprocess.run([sys.executable, "-c", BROKEN, *QUICK["train"], "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("Traceback") and done.stderr.rstrip().endswith("ValueError: boom")


def test_a_warmup_the_schedule_cannot_follow_is_a_usage_error(capsys):
    line = _usage_error(capsys, [*SMALL_TRAIN, "--epochs", "3", "--warmup", "3"])
    assert "--warmup must be less than --epochs (3), got 3" in line
    line = _usage_error(capsys, [*SMALL_TRAIN, "--epochs", "3", "--warmup", "1", "--schedule", "plateau"])
    assert "--warmup cannot come before --schedule plateau" in line


@pytest.mark.parametrize("extra, fragment", [
    (["--optimizer", "adam", "--momentum", "0.9"], "--optimizer adam takes no --momentum (it takes --beta1, --beta2"),
    (["--optimizer", "gd", "--weight-decay", "0.1", "--beta", "0.5"], "--optimizer gd takes no --beta (it takes "
                                                                       "--momentum, --weight-decay)"),
    (["--optimizer", "adam", "--beta1", "1.5"], "invalid betas=(1.5, 0.999)"),
    (["--optimizer", "sgd", "--momentum", "-1"], "invalid momentum=-1.0"),
    (["--optimizer", "rmsprop", "--beta", "x"], "--beta: expected a number, got 'x'"),
])
def test_train_rule_options_the_optimizer_refuses_fail_before_any_folder(tmp_path, capsys, monkeypatch, extra,
                                                                          fragment):
    monkeypatch.chdir(tmp_path)
    line = _usage_error(capsys, [*QUICK["train"], *extra])
    assert line.startswith("tinygrad-lite train: ") and fragment in line
    assert list(tmp_path.iterdir()) == []  # no runs/ folder made


def test_train_rule_options_reach_the_optimizer_and_are_announced(tmp_path, capsys, monkeypatch):
    seen = {}
    real = training.optimizer_options
    monkeypatch.setattr(training, "optimizer_options", lambda config: seen.setdefault("options", real(config)))
    status = cli.main([*QUICK["train"], "--optimizer", "adam", "--beta1", "0.8", "--weight-decay", "0.01",
                       "--out", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert seen["options"] == {"betas": (0.8, 0.999), "weight_decay": 0.01}
    assert out.startswith("train: adam lr 0.01, betas (0.8, 0.999), weight_decay 0.01, batch size 64")
