"""``napari-colorize``: colorize files, train models, evaluate them, and say
what each model is for.

A thin face over the library: every option maps onto a keyword of
:func:`napari_colorize.colorize`, :func:`napari_colorize.training.train`,
:func:`napari_colorize.evaluation.evaluate` (or ``evaluate_by_subfolder``),
:func:`napari_colorize.model_info.describe_model` or
:func:`napari_colorize.checkpoint_files.update_checkpoint_metadata`.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import shlex
import sys
import warnings
from pathlib import Path

from .architectures import architectures
from .cli_colorize import CommandError, progress_bar, run_colorize
from .options import ColorizeOptions, OptionSpec, option_spec, option_specs
from .training_config import TrainConfig

PROG = "napari-colorize"


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _argument_type(spec: OptionSpec):
    """Parse a command-line value as the option's kind and check it by its declaration."""

    def parse(text: str):
        try:
            value = spec.kind(text) if spec.kind in (int, float) else text
            return spec.validate(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = spec.name  # argparse names the type in its messages
    return parse


def _help(spec: OptionSpec) -> str:
    return spec.describe().replace("%", "%%")  # argparse formats help with %


def add_option_arguments(parser: argparse.ArgumentParser, names: list[str] | None = None, *, options_class: type = ColorizeOptions) -> None:
    """Arguments for the options ``names`` (default: every option shown on the
    command line) of ``options_class``, built from their declarations."""
    specs = option_specs(options_class)
    for spec in specs if names is None else [option_spec(n, options_class) for n in names]:
        if not spec.in_cli:
            continue
        flag = "--" + spec.name.replace("_", "-")
        if spec.explicit_range:
            group = parser.add_mutually_exclusive_group()
            group.add_argument(flag, choices=spec.choices, default=spec.default, help=_help(spec))
            group.add_argument(
                "--range", nargs=2, type=float, metavar=("LOW", "HIGH"), help="explicit intensity range mapped to black..white"
            )
        elif spec.multiple:
            parser.add_argument(flag, type=_argument_type(spec), default=spec.default, metavar=",".join(spec.choices), help=_help(spec))
        elif spec.kind is tuple:
            parser.add_argument(flag, nargs=len(spec.default), type=float, default=spec.default, metavar=("LOW", "HIGH"), help=_help(spec))
        elif spec.choices is not None and not spec.other_values:
            parser.add_argument(flag, choices=spec.choices, default=spec.default, help=_help(spec))
        else:
            parser.add_argument(flag, type=_argument_type(spec), default=spec.default, help=_help(spec))


def options_from_arguments(args: argparse.Namespace, *, options_class: type = ColorizeOptions, **overrides) -> ColorizeOptions:
    """The options (an ``options_class``) of parsed arguments; ``overrides`` win."""
    specs = option_specs(options_class)
    values = {spec.name: getattr(args, spec.name) for spec in specs if spec.in_cli and hasattr(args, spec.name)}
    for spec in specs:
        if spec.explicit_range and getattr(args, "range", None):
            values[spec.name] = tuple(args.range)
        if spec.kind is tuple and spec.name in values:
            values[spec.name] = tuple(values[spec.name])
    return options_class(**{**values, **overrides})


def add_description_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments for what a checkpoint records about itself (see :class:`napari_colorize.model_info.ModelDescription`)."""
    group = parser.add_argument_group("description recorded in the checkpoint, shown to users")
    group.add_argument("--description", metavar="TEXT", help="one line: what the model does and when to choose it")
    group.add_argument("--domain", metavar="TEXT", help="the kind of images it knows, e.g. 'H&E histology'")
    group.add_argument("--training-data", metavar="TEXT", help="the images it learned from, with their sources")
    group.add_argument("--terms", metavar="TEXT", help="the terms of use it inherits from its training data")


def _description_from_arguments(args: argparse.Namespace):
    from .model_info import DESCRIPTION_FIELDS, ModelDescription

    return ModelDescription(**{name: getattr(args, name) or "" for name in DESCRIPTION_FIELDS})


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Predicted colour for grayscale scientific images.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log which device and model run")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("colorize", help="colorize image files (TIFF stacks, PNG, JPEG)")
    run.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    run.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="output file (.tif keeps frame axes; .png/.jpg one frame; .ome.zarr a multiscale OME-Zarr), or a folder for several inputs",
    )
    run.add_argument(
        "--uncertainty",
        type=Path,
        metavar="FILE",
        help="also write the model's per-pixel uncertainty (normalised entropy of its predicted colour distribution: "
        "0 certain, 1 uniform) as a float32 .tif laid out like the output, or into a folder for several inputs "
        "(INPUT_uncertainty.tif); classification models only",
    )
    run.add_argument(
        "--stack",
        action="store_true",
        help="colorize many same-sized 2-D inputs as one stack into one TIFF (-o OUT.tif): frame order is the order given, "
        "the file names are recorded in the output; the stack shares one palette with --context stack",
    )
    run.add_argument(
        "--hints",
        type=Path,
        metavar="CSV",
        help="colour hints for one input: a CSV file with a header y,x,r,g,b (image pixels; colours 0-255) and, for a stack, "
        "a frame column (the frame's index, from 0); each hint colours a small patch and steers the colours around it",
    )
    run.add_argument(
        "--reference",
        type=Path,
        metavar="IMAGE",
        help="a colour image (JPEG, PNG, TIFF) whose palette the result follows, e.g. a Hubble composite or a stained slide; "
        "its distribution of colours is given to a model trained to take it (natural-lean, natural), not painted on afterwards",
    )
    add_option_arguments(run)
    run.add_argument("--scheduler", metavar="ADDRESS", help="dask.distributed scheduler address: colorize the frames on that cluster")
    run.add_argument("--overwrite", action="store_true", help="replace existing output files")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    train = commands.add_parser("train", help="train a model on folders of colour images")
    train.add_argument("folders", nargs="+", type=Path, metavar="FOLDER")
    train.add_argument("-o", "--output", type=Path, required=True, help="checkpoint to write (.safetensors)")
    train.add_argument("--head", choices=("classification", "regression"), default="classification")
    train.add_argument("--steps", type=int, default=20000)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--crop-size", type=int, default=128)
    train.add_argument("--lr", type=_positive_float, default=1e-3, help="Adam learning rate")
    train.add_argument(
        "--rebalance-lambda",
        type=float,
        default=TrainConfig.rebalance_lambda,
        metavar="LAMBDA",
        help="class rebalancing: the prior mixed with the uniform one, 0 (full rebalancing: rare colours weigh most) to 1 (none); default %(default)s, the paper's",
    )
    train.add_argument(
        "--rare-colour-sampling",
        type=float,
        default=TrainConfig.rare_colour_sampling,
        metavar="SHARE",
        help="share of the crops cut from images drawn by how rare their colours are (saturated nebulae, stained nuclei more often than gray sky), 0 to 1; the rest are drawn uniformly; default %(default)s",
    )
    train.add_argument("--width", type=int, default=32, help="network width (channels of the first layer)")
    train.add_argument(
        "--architecture",
        choices=architectures(),
        help="network family of a fresh model, or of one warm-started from --init (default: the init model's, else colornet-v1)",
    )
    train.add_argument("--time-limit", type=_positive_float, metavar="MINUTES", help="stop after this much training time")
    train.add_argument("--checkpoint-minutes", type=_positive_float, default=5.0, help="save every N minutes (default 5)")
    train.add_argument("--workers", type=int, help="data-loading processes")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--fresh-lr-scale",
        type=_positive_float,
        default=1.0,
        help="with --init, the weights the init model lacks (new branches) learn this many times faster (default 1)",
    )
    train.add_argument(
        "--any-orientation",
        action="store_true",
        help="augment with quarter turns and upside-down flips: no up or down, as in scientific images",
    )
    train.add_argument(
        "--shift-consistency",
        type=float,
        default=0.0,
        metavar="WEIGHT",
        help="penalise colouring a pixel differently when the tile around it moves or the frame is cropped around it (two shifted windows per crop, the second with the context of a cut-out; default 0: off)",
    )
    train.add_argument(
        "--decoded-consistency",
        type=float,
        default=0.0,
        metavar="WEIGHT",
        help="with --shift-consistency, also penalise the difference of the decoded colours (annealed means) of the two windows, not only of their distributions (classification; default 0: off)",
    )
    train.add_argument(
        "--cut-out-context",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of the crops (0 to 1) whose frame context is a random cut-out of the image instead of the whole image, as when a crop is colorized alone (context-taking networks; default 0)",
    )
    train.add_argument(
        "--context-consistency",
        type=float,
        default=0.0,
        metavar="WEIGHT",
        help="penalise the frame-context branch for answering a random cut-out of an image differently from the whole image, so a crop colorized alone is given the context its frame would give (context-taking networks; default 0: off)",
    )
    train.add_argument(
        "--dark-sky",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of the crops (0 to 1) whose frame context shows their image small on a dark, noisy, starry background, so colours do not hang on how much of a frame is empty sky or background (context-taking networks; default 0)",
    )
    train.add_argument(
        "--dark-sky-shift-consistency",
        type=float,
        default=0.0,
        metavar="WEIGHT",
        help="with --dark-sky, extra weight of the shift penalty on the crops given a dark-sky context, beside --shift-consistency on every crop (default 0)",
    )
    train.add_argument(
        "--frames",
        nargs="+",
        type=Path,
        default=[],
        metavar="DIR",
        help="folders of images of the kind you will colorize (gray or colour, TIFF/PNG/JPEG/FITS); their colours are not learned: with --frames-share, crops of them teach only that a structure keeps its colour when the grid moves or the frame is cut around it",
    )
    train.add_argument(
        "--frames-share",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of the crops (0 to 1) cut from --frames (default 0)",
    )
    train.add_argument(
        "--frames-shift-consistency",
        type=float,
        default=0.0,
        metavar="WEIGHT",
        help="extra weight of the shift penalty on the crops cut from --frames, beside --shift-consistency on every crop (default 0)",
    )
    train.add_argument(
        "--frames-context-consistency",
        type=float,
        default=0.0,
        metavar="WEIGHT",
        help="extra weight of the --context-consistency penalty on the crops cut from --frames, so frames are held to one context without dulling what a photograph's context says (default 0)",
    )
    train.add_argument(
        "--frames-scale",
        type=_positive_float,
        nargs=2,
        default=list(TrainConfig.frames_scale_jitter),
        metavar=("LOW", "HIGH"),
        help="range of the random rescaling of --frames before cropping (default {} {}, as for the colour images); above 1 enlarges them, so their whole-frame views are as reduced as those of frames larger than any given".format(
            *TrainConfig.frames_scale_jitter
        ),
    )
    train.add_argument(
        "--hint-fraction",
        type=float,
        default=TrainConfig.hint_fraction,
        metavar="SHARE",
        help=f"share of the crops (0 to 1) given colour hints sampled from the truth (hint-taking networks; default {TrainConfig.hint_fraction})",
    )
    train.add_argument(
        "--palette-fraction",
        type=float,
        default=TrainConfig.palette_fraction,
        metavar="SHARE",
        help=f"share of the crops (0 to 1) given the palette of the image they were cut from, so the network learns to follow a reference palette (-palette architectures; default {TrainConfig.palette_fraction})",
    )
    train.add_argument(
        "--learn-only",
        nargs="+",
        default=[],
        metavar="MODULE",
        help="train only these modules of the network, every other weight and every batch statistic frozen: hint_path hint_gain (its response to hints), context_path (its use of the frame's context) or palette_path palette_gain (its response to a reference palette), for a model whose other layers moved on since; models/graft_hint_path.py then puts a retrained hint response on a model without changing its automatic colours",
    )
    train.add_argument("--init", metavar="MODEL", help="fine-tune from a shipped model name or checkpoint")
    train.add_argument("--resume", action="store_true", help="continue from OUTPUT.state.pt if present")
    add_option_arguments(train, ["device"])
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_description_arguments(train)

    ev = commands.add_parser("evaluate", help="score models against the gray baseline on colour images")
    ev.add_argument("models", nargs="+", metavar="MODEL", help="shipped model names or checkpoint files")
    ev.add_argument("--images", nargs="+", type=Path, required=True, metavar="DIR", help="folders of colour images (one table each)")
    ev.add_argument("--limit", type=int, help="use only the first N images of each folder (with --by-subfolder: of each subfolder)")
    ev.add_argument(
        "--by-subfolder",
        action="store_true",
        help="one table per folder with rows for each of its subfolders (images directly in it as '(top level)') and for all its images pooled",
    )
    add_option_arguments(ev, ["temperature", "device", "precision"])
    ev.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    quantize = commands.add_parser("quantize", help="make a model's int8 companion, for fast CPU runs, calibrated on colour images")
    quantize.add_argument("model", metavar="MODEL", help="shipped model name or checkpoint file")
    quantize.add_argument(
        "--images", nargs="+", type=Path, required=True, metavar="DIR", help="folders of colour images of the kind the model colours (its training images)"
    )
    quantize.add_argument("--limit", type=int, default=64, help="calibrate on at most N images, spread over the folders (default 64)")
    quantize.add_argument("-o", "--output", type=Path, help="where to write it (default: beside the checkpoint, where colorize finds it)")

    models = commands.add_parser("models", help="describe the shipped models, or checkpoint files")
    models.add_argument("models", nargs="*", metavar="MODEL", help="shipped model names or checkpoint files (default: every shipped model)")
    models.add_argument("--markdown", action="store_true", help="one Markdown table (name, network, domain, description, terms)")

    describe = commands.add_parser("describe", help="record a description, domain, training data and terms in a checkpoint file")
    describe.add_argument("checkpoint", type=Path, metavar="FILE", help="a .safetensors checkpoint")
    describe.add_argument("-o", "--output", type=Path, help="write the described checkpoint here (default: rewrite FILE)")
    describe.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    add_description_arguments(describe)
    return parser


def _run_train(args) -> None:
    from .training import train

    config = TrainConfig(
        head=args.head,
        steps=args.steps,
        batch_size=args.batch_size,
        crop_size=args.crop_size,
        learning_rate=args.lr,
        rebalance_lambda=args.rebalance_lambda,
        rare_colour_sampling=args.rare_colour_sampling,
        width=args.width,
        time_limit_minutes=args.time_limit,
        checkpoint_minutes=args.checkpoint_minutes,
        seed=args.seed,
        architecture=args.architecture,
        any_orientation=args.any_orientation,
        fresh_lr_scale=args.fresh_lr_scale,
        shift_consistency=args.shift_consistency,
        decoded_consistency=args.decoded_consistency,
        cut_out_context=args.cut_out_context,
        context_consistency=args.context_consistency,
        dark_sky=args.dark_sky,
        dark_sky_shift_consistency=args.dark_sky_shift_consistency,
        frames_share=args.frames_share,
        frames_shift_consistency=args.frames_shift_consistency,
        frames_context_consistency=args.frames_context_consistency,
        frames_scale_jitter=tuple(args.frames_scale),
        hint_fraction=args.hint_fraction,
        palette_fraction=args.palette_fraction,
        learn_only=tuple(args.learn_only),
    )
    if args.workers is not None:
        config.workers = args.workers
    colorizer = train(
        args.folders,
        output=args.output,
        config=config,
        device=args.device,
        init=args.init,
        frames=args.frames,
        resume=args.resume,
        progress=not args.quiet,
        description=_description_from_arguments(args),
    )
    info = colorizer.metadata["training"]
    print(f"wrote {args.output}: {info['steps']} steps in {info['wall_time_s']:.0f} s, loss {info['final_loss']}")
    from .quantized import make_int8_companion

    companion = make_int8_companion(args.output, args.folders)
    if companion is not None:
        print(f"wrote {companion}: its int8 companion, for speed on a CPU")
    else:
        folders = " ".join(shlex.quote(str(folder)) for folder in args.folders)
        print(f"for int8 speed on a CPU, make its companion: napari-colorize quantize {shlex.quote(str(args.output))} --images {folders}")


def _run_evaluate(args) -> None:
    from .evaluation import evaluate, evaluate_by_subfolder, format_grouped_table, format_table

    score, table = (evaluate_by_subfolder, format_grouped_table) if args.by_subfolder else (evaluate, format_table)
    for folder in args.images:
        if not folder.is_dir():
            raise CommandError(f"image folder not found: {folder}")
        bar, update = progress_bar(args.quiet, folder.name)
        bar.unit = "image"
        with bar:
            scores = score(args.models, folder, temperature=args.temperature, device=args.device, precision=args.precision, limit=args.limit, progress=update)
        print(table(scores, title=str(folder)))
        print()


def _run_quantize(args) -> None:
    from .io import sample_pictures
    from .model import load_checkpoint
    from .quantized import quantize_colorizer

    if args.limit < 1:
        raise CommandError(f"--limit must be at least 1, got {args.limit}")
    colorizer = load_checkpoint(args.model, device="cpu")
    try:
        written = quantize_colorizer(colorizer, sample_pictures(args.images, limit=args.limit), args.output)
    except ImportError as exc:
        raise CommandError(f"quantizing needs onnx and onnxruntime: pip install 'napari-colorize[quantize]' ({exc})") from None
    print(f"wrote {written} (int8, for {colorizer.name}, sha256 {colorizer.sha256[:12]})")


def _run_models(args) -> None:
    from .model_info import describe_model, markdown_table, shipped_model_infos

    infos = [describe_model(model) for model in args.models] if args.models else shipped_model_infos()
    if not infos:
        raise CommandError("no shipped models are installed; give checkpoint files")
    print(markdown_table(infos) if args.markdown else "\n\n".join(info.text() for info in infos))


def _run_describe(args) -> None:
    from .checkpoint_files import update_checkpoint_metadata
    from .model_info import describe_model

    entries = _description_from_arguments(args).entries()
    if not entries:
        raise CommandError("nothing to record: give --description, --domain, --training-data or --terms")
    for path in (args.checkpoint, args.output):
        if path is not None and path.suffix != ".safetensors":
            raise CommandError(f"a checkpoint file ends in .safetensors, got {path}")
    output = args.output or args.checkpoint
    if args.output is not None and args.output.exists() and not args.overwrite and not os.path.samefile(args.output, args.checkpoint):
        raise CommandError(f"{args.output} exists; pass --overwrite to replace it")
    digest = update_checkpoint_metadata(args.checkpoint, entries, output=output)
    print(f"wrote {output} (sha256 {digest}; its weights unchanged)")
    print(describe_model(output).text())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``napari-colorize`` command; returns the exit status."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    runner = {"colorize": lambda parsed: run_colorize(parsed, options_from_arguments(parsed)), "train": _run_train, "evaluate": _run_evaluate, "quantize": _run_quantize, "models": _run_models, "describe": _run_describe}[
        args.command
    ]
    with warnings.catch_warnings():  # restored on return: main() may run inside another program
        warnings.simplefilter("default")
        warnings.showwarning = _show_warning
        return _run(runner, args)


def command() -> None:
    """The ``napari-colorize`` program (and ``python -m napari_colorize``):
    :func:`main` on the process's arguments, then the process exits with its status."""
    status = main()
    # Nothing the command made needs collecting now that the process ends:
    # frozen, torch's and OpenVINO's hundreds of thousands of objects are not
    # walked by the interpreter's last collection, 0.4-0.5 s of every run.
    # Files are closed and atexit handlers still run.
    gc.freeze()
    sys.exit(status)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def _run(runner, args) -> int:
    """Run a subcommand; every failure becomes one line on stderr and an exit status."""
    from .checkpoint_files import CheckpointError
    from .io import ImageFileError

    try:
        runner(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (CommandError, CheckpointError, ImageFileError, OSError, ValueError, TypeError, MemoryError) as exc:
        # OSError: a folder not writable, a disk full, a file vanished...
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug or a runtime failure: still one line, details with -v
        logging.getLogger(__name__).info("details:", exc_info=True)
        print(f"{PROG}: error: unexpected {type(exc).__name__}: {_one_line(exc)} (run with -v for details)", file=sys.stderr)
        return 1
    return 0


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    command()
