"""`mai-sr` command line: argument parsing, printing and exit codes.

Each subcommand parses its arguments, calls documented library functions that return data,
and prints it; no library module prints or picks an exit code. Heavy modules are imported
inside the handlers so `mai-sr --help` and `mai-sr <cmd> --help` never import TensorFlow,
and model-running commands (eval, bench, lint, score, upscale) never do.

Lists come from their registries: model names from :func:`mai_sr.registry.list_models`,
`--pretrained` from the shipped files (:func:`mai_sr.pretrained.pretrained_names`), runners from
:data:`mai_sr.device.RUNNERS`, and each runner's own `bench` options from its class's
`add_cli_options(group)`. The parser class, its help formatter and the argument types are
in :mod:`mai_sr.cli_args`; each subcommand's options are made by its own builder here.

Exit codes: 0; 1 for `lint --strict` warnings and for a multi-device `bench` where a device
failed; 2 for errors (a :class:`~mai_sr.errors.MaiSrError` becomes a one-line error); 130
for Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import warnings

from mai_sr import __version__
from mai_sr.cli_args import (LibraryChoices, Parser, csv_list, non_negative_int, positive_float,
                             positive_int, size_hw, tile_side)
from mai_sr.cli_args import examples as _examples
from mai_sr.cli_train import add_train_parser
from mai_sr.device import RUNNERS
from mai_sr.errors import MaiSrError
from mai_sr.export import PRECISIONS
from mai_sr.pretrained import pretrained_names
from mai_sr.registry import SCALES, list_models
from mai_sr.tflite.targets import export_targets, lint_targets

PROG = "mai-sr"

MODEL_NAMES = tuple(list_models())
PRETRAINED_NAMES = tuple(pretrained_names())
PRETRAINED_HELP = "ARCH (its default weight) or ARCH.TAG (`mai-sr models` lists them)"


# ---------------------------------------------------------------- handlers
# Each handler imports its library modules lazily, calls them, prints and picks the exit code.


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def _fixed_model(args):
    """The .tflite to run: the positional path, or the shipped fixed-shape --pretrained."""
    from mai_sr.weights import model_file

    return model_file(args.model, args.pretrained, "fixed")


def cmd_train(args) -> int:
    """Print the plan before the first step (data, validation images, run folder, steps,
    expected time) and, at the end, the validation PSNR of bicubic and of each stage with
    the gain and the command that exports the run (:mod:`mai_sr.train.plan` makes both). A
    ``--resume`` of a finished run trains nothing and says so."""
    from mai_sr.train import TrainConfig, train_from_config
    from mai_sr.train.plan import STAGE_NAMES, end_lines

    if args.recipe:
        return _train_recipe(args)
    config = TrainConfig.from_cli(vars(args))
    finished = []

    def say_plan(plan) -> None:  # before the first step; stderr, beside the progress bars
        if plan.finished:
            finished.append(plan)
            return
        print("\n".join(plan.lines()), file=sys.stderr, flush=True)

    run_dir = train_from_config(config, resume=args.resume, quiet=args.quiet,
                                tensorboard=args.tensorboard is not False, on_plan=say_plan)
    if finished:
        done = ", ".join(f"{STAGE_NAMES[stage]} {total}/{total} steps"
                         for stage, _, total in finished[0].stages)
        print(f"{run_dir}: already finished ({done}); nothing to resume")
    print("\n".join(end_lines(run_dir, _run_argument(run_dir, args.out))))
    return 0


def _run_argument(run_dir, out) -> str:
    """How the next command names a run: as the user did (--out, runs/latest), else the
    path relative to the working folder when it is below it."""
    if out is not None:
        return out
    if os.path.realpath("runs/latest") == os.path.realpath(run_dir):
        return "runs/latest"
    relative = os.path.relpath(run_dir)
    return run_dir if relative.startswith("..") else relative


def _train_recipe(args) -> int:
    """``train --recipe FILE [--out DIR]``: every stage of the recipe, resumable."""
    from mai_sr.train.plan import end_lines
    from mai_sr.recipes import read_recipe, run_recipe

    ignored = {"recipe", "out", "quiet", "tensorboard", "resume", "command", "func"}
    given = sorted(k for k, v in vars(args).items() if k not in ignored and v not in (None, False))
    if given:
        raise MaiSrError(f"--recipe: the recipe sets the training; do not combine it with "
                         f"--{given[0].replace('_', '-')}")
    out = args.out or f"runs/{read_recipe(args.recipe)['name']}"
    runs = run_recipe(args.recipe, out, quiet=args.quiet,
                      tensorboard=args.tensorboard is not False,
                      on_stage=lambda name, action: print(f"stage {name}: {action}"))
    print("\n".join(end_lines(runs[-1])))
    return 0


def cmd_export(args) -> int:
    from mai_sr.export.convert import describe_export, export
    from mai_sr.training_data import suggest_test_set

    paths = export(args.output, run=args.run, model=args.model, weights=args.weights,
                   pretrained=args.pretrained, shape=args.shape, scale=args.scale,
                   dynamic=args.dynamic, precision=args.precision, calib=args.calib,
                   calib_n=args.calib_n, target=args.target, force=args.force)
    for p in paths:
        print("\n".join(describe_export(p)))
    scored = paths[-1]  # the dynamic file when there is one: whole images, any size
    print(f"next: mai-sr lint {paths[0]}; mai-sr eval {scored} {suggest_test_set()}; "
          f"mai-sr bench {paths[0]}")
    return 0


def cmd_eval(args) -> int:
    from mai_sr.evaluate import evaluate_tflite, format_results, results_csv
    from mai_sr.fileio import write_text
    from mai_sr.weights import model_file

    if args.csv == "-" and sys.stdout is None:  # started with stdout closed (`>&-`)
        raise MaiSrError("--csv -: standard output is closed; give --csv FILE")
    results = evaluate_tflite(model_file(args.model, args.pretrained), args.data,
                              y_channel=args.y, crop=args.crop, save_dir=args.save_dir,
                              quiet=args.quiet, cache_dir=args.cache_dir, jobs=args.jobs,
                              tile=args.tile)
    if args.csv == "-":  # the CSV is the output; the summary goes to stderr
        sys.stdout.write(results_csv(results))
        print(format_results(results), file=sys.stderr)
        return 0
    if args.csv:
        write_text(args.csv, results_csv(results))
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2, sort_keys=True))
    else:
        print(format_results(results))
        if args.csv:
            print(f"per-image rows: {args.csv}")
    return 0


def cmd_bench(args) -> int:
    """Exit code 0, or 1 when a multi-device run had a device fail (its error is printed)."""
    from mai_sr.device import format_result, get_runner, results_to_json

    model = _fixed_model(args)
    runner = get_runner(args.runner, **vars(args))
    results = runner.bench(model)
    listed = results if isinstance(results, list) else [results]
    if args.json:
        print(json.dumps(results_to_json(results), indent=2, sort_keys=True))
    else:
        fmt = getattr(runner, "format_result", format_result)
        print("\n\n".join(fmt(r) for r in listed))
    return 1 if any(r.error for r in listed) else 0


def cmd_push(args) -> int:
    from mai_sr.device.adb import AI_BENCHMARK_MODEL, AI_BENCHMARK_STEPS, push_model

    model = _fixed_model(args)
    for serial in push_model(model, adb=args.adb, serial=args.serial):
        print(f"pushed {model} -> {serial}:{AI_BENCHMARK_MODEL}")
    print(AI_BENCHMARK_STEPS)
    return 0


def cmd_synap(args) -> int:
    from mai_sr.device.synap import convert

    out = convert(args.model, target=args.target, out_dir=args.out_dir, meta=args.meta)
    print(out.summary())
    return 0


def lint_exit_code(report, strict: bool = False) -> int:
    """`mai-sr lint`'s exit code: for a LintReport 2 errors, 1 warnings (only with
    `strict`), 0 clean; for a TargetLintReport (--target) 2 when an op stays on the CPU."""
    from mai_sr.lint import TargetLintReport

    if isinstance(report, TargetLintReport):
        return 2 if report.cpu_ops else 0
    if report.errors:
        return 2
    return 1 if strict and report.warnings else 0


def cmd_lint(args) -> int:
    from mai_sr.lint import lint_file

    report = lint_file(args.model, args.target)
    code = lint_exit_code(report, args.strict)
    if args.json:
        print(json.dumps({**report.to_dict(), "exit_code": code}, indent=2))
    else:  # the terminal's width ($COLUMNS; 80 when piped), at least 60 columns
        width = None if args.wide else max(60, shutil.get_terminal_size().columns)
        print(report.format_table(width))
    return code


def cmd_profile(args) -> int:
    from mai_sr.profile import format_profile, profile_model

    prof = profile_model(args.model, size=args.size, deploy=not args.train_graph,
                         scale=args.scale)
    if args.json:
        _print_json(prof.to_dict())
    else:
        print(format_profile(prof))
    return 0


def cmd_score(args) -> int:
    """The score with 2 decimals (one line per bench result), the scored CSV as a table, or
    JSON with --json."""
    from mai_sr import score

    if args.csv is not None:
        if args.psnr is not None or args.runtime_ms is not None or args.runtime_from is not None:
            raise MaiSrError("--csv scores a whole file: do not combine it with --psnr, "
                             "--runtime-ms or --runtime-from")
        table = score.score_csv(args.csv)
        if args.json:
            print(table.to_json(orient="records", indent=2))
        else:
            print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        return 0
    if args.psnr is None:
        raise MaiSrError("--psnr is required (with --runtime-ms or --runtime-from), or use --csv")
    if args.challenge:
        args.data, args.device = args.data or "challenge", args.device or "vs680"
    rows = score.score_runs(args.psnr, runtime_ms=args.runtime_ms, runtime_from=args.runtime_from,
                            data=args.data, device=args.device, scale=args.scale,
                            input_hw=args.input)
    if args.json:
        for row in rows:
            if not row["label"]:
                del row["label"]
        print(json.dumps(rows[0] if len(rows) == 1 else rows, indent=2, sort_keys=True))
        return 0
    for row in rows:
        label = f"{row['label']}: " if len(rows) > 1 else ""
        ms = f" ({row['runtime_ms']:.2f} ms)" if len(rows) > 1 else ""
        caveat = f"  ({row['caveat']})" if row["caveat"] else ""
        print(f"{label}{row['score']:.2f}{ms}{caveat}")
    return 0


def cmd_report(args) -> int:
    from mai_sr.device.options import collect_runner_options
    from mai_sr.report import make_report

    out = make_report(args.inputs, pretrained=args.pretrained, tflite=args.tflite, data=args.data,
                      runners=args.runner, out_dir=args.out, quiet=args.quiet,
                      cache_dir=args.cache_dir, announce=None if args.quiet else print,
                      runner_options=collect_runner_options(args, args.runner))
    print(f"report: {out}")
    return 0


def _say_float_model(path) -> None:
    """A line on stderr when `path` computes in float (a float32 export, not INT8)."""
    from mai_sr.tflite.runtime import FLOAT_MODELS, model_precision

    precision = model_precision(path)
    if precision in FLOAT_MODELS:
        print(f"{path}: {FLOAT_MODELS[precision]} (float compute, not INT8)", file=sys.stderr)


def cmd_upscale(args) -> int:
    from mai_sr.upscale import upscale_paths

    written = upscale_paths(args.input, args.output, model=args.model,
                            pretrained=args.pretrained, tile=args.tile, quiet=args.quiet,
                            png_level=args.png_level, quality=args.quality, fmt=args.format,
                            jobs=args.jobs, max_pixels=args.max_pixels)
    for p in written:
        print(p)
    if args.model and not args.quiet:  # after the run: the runtime has checked the file
        _say_float_model(args.model)
    return 0


def cmd_import(args) -> int:
    from mai_sr.importer import import_weights

    result = import_weights(args.source, args.model, args.out, channel_order=args.channel_order,
                            input_range=args.input_range, gate_data=args.gate_data,
                            scale=args.scale, force=args.force)
    if args.json:
        _print_json(result.to_dict())
    else:
        print(result.summary())
    return 0


def cmd_models(args) -> int:
    from mai_sr.registry import list_models
    from mai_sr.weights import list_weights

    rows = [w for w in list_weights() if args.scale is None or w.scale == args.scale]
    if args.json:
        from dataclasses import asdict

        _print_json({"architectures": list_models(), "weights": [asdict(w) for w in rows]})
        return 0
    print(f"architectures: {', '.join(list_models())}")
    # columns as wide as their longest entry (layout options have long names)
    name_w = max([len("weights")] + [len(w.name) for w in rows])
    arch_w = max([len("arch")] + [len(w.architecture) for w in rows])
    print(f"{'weights':<{name_w}} {'arch':<{arch_w}} {'x':>1} {'source':<22} {'licence':<10} "
          f"{'Set5 Y (pub.)':>13}")
    for w in rows:
        source = ("shipped" + (", zoo" if w.sha256 else "")) if w.shipped else "ETDS zoo"
        if w.default_for:
            source += ", default"
        y = (w.published_psnr_y or {}).get("Set5")
        print(f"{w.name:<{name_w}} {w.architecture:<{arch_w}} {w.scale:>1} {source:<22} "
              f"{w.licence:<10} {'' if y is None else f'{y:.2f}':>13}")
    print("shipped: --pretrained NAME (default: what --pretrained ARCH means); "
          "zoo: mai-sr fetch NAME, then --weights/--teacher NAME")
    return 0


def cmd_fetch(args) -> int:
    from mai_sr.weights import cached_deploy_weights, fetch, get_weight

    for name in args.names:
        checkpoint = fetch(name, base=args.base)
        print(f"{name}: {checkpoint} (sha256 checked)")
        if args.import_ is not False:
            from mai_sr.importer import import_weights

            weight = get_weight(name)
            out = cached_deploy_weights(weight)
            if not out.is_file():
                result = import_weights(checkpoint, weight.architecture, out)
                print(f"  imported: {result.path} (sanity gate +{result.gate['margin']:.2f} dB)")
            else:
                print(f"  imported: {out} (cached)")
    return 0


# ---------------------------------------------------------------- parser
# One builder per subcommand, `_add_<command>_parser(sub)`, in the order of `mai-sr --help`.
# Help texts state each default: "(default X)" for a value, "(default: ...)" for a rule.


def _add_tflite_model(p: argparse.ArgumentParser, kind: str = "dynamic") -> None:
    """The .tflite a command runs: a positional file or a shipped --pretrained one."""
    p.add_argument("model", nargs="?", help=".tflite file (or --pretrained)")
    shape = "fixed-shape (timing-input)" if kind == "fixed" else "dynamic-shape"
    p.add_argument("--pretrained", choices=PRETRAINED_NAMES, metavar="NAME",
                   help=f"a shipped model's {shape} file, instead of a file: {PRETRAINED_HELP}")


def _add_json(p: argparse.ArgumentParser, what: str = "the result") -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def _add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars or notes on standard error")


def _add_cache_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", default=None,
                   help="cache of the bicubic baselines, of the LR images made from the data "
                        "and of its decoded HR images (default: $XDG_CACHE_HOME/mai-sr; an "
                        "unwritable folder means no cache)")


def _add_export_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("export", help="export INT8 (or fp16/fp32) TFLite",
                       epilog=_examples("mai-sr export model.tflite --run runs/latest --dynamic",
                                        "mai-sr export u85.tflite --pretrained abpn --target "
                                        "ethos-u85 --force"))
    p.add_argument("output", help="output .tflite path (fixed shape); --dynamic adds *_none.tflite")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--run", help="run directory from `mai-sr train`")
    src.add_argument("--pretrained", choices=PRETRAINED_NAMES, metavar="NAME",
                     help=f"a shipped pretrained model: {PRETRAINED_HELP}")
    p.add_argument("--model", choices=list_models(), help="architecture, with --weights")
    p.add_argument("--scale", type=int, choices=SCALES, default=None,
                   help="upscaling factor of --model/--weights (default 3; --run reads the run's)")
    p.add_argument("--weights", help="Keras deploy weights file, with --model")
    p.add_argument("--shape", type=size_hw, default=None,
                   help="LR input HxW (default: the scale's timing input, 360x640 at x3)")
    p.add_argument("--dynamic", action="store_true",
                   help="also write a dynamic-shape *_none.tflite")
    p.add_argument("--precision", choices=PRECISIONS, default="int8",
                   help="number format of the file (default %(default)s)")
    p.add_argument("--calib", help="folder of images for post-training calibration (default "
                   "builtin); refused where unused (a QAT source, fp16/fp32)")
    p.add_argument("--calib-n", type=positive_int, default=100,
                   help="calibration crops drawn from --calib (default %(default)s)")
    p.add_argument("--target", choices=export_targets(), default=None,
                   help="rewrite the INT8 file with exact equivalents so every op runs on this "
                        "Arm Ethos-U NPU under Vela (depth-to-space -> split convs, concat, "
                        "reshape); outputs stay bit-identical (default: no rewrite)")
    p.add_argument("--force", action="store_true",
                   help="replace existing output files (default: refuse, as train --out does)")
    p.set_defaults(func=cmd_export)
    return p


def _add_eval_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("eval", help="PSNR/SSIM of a TFLite model (LiteRT, no TensorFlow)",
                       epilog=_examples("mai-sr eval --pretrained scsrn --data Set5/,Set14/",
                                        "mai-sr eval model_none.tflite --data B100/ --y --csv "
                                        "rows.csv"))
    _add_tflite_model(p)
    p.add_argument("--data", default="builtin",
                   help="HR images: DIR[,DIR], folder names under $MAI_SR_DATA, or builtin "
                        "(default builtin: scikit-image's photos, train's default training "
                        "data, not a test set; the output says so)")
    p.add_argument("--y", action="store_true", help="on BT.601 luma (default: on RGB)")
    p.add_argument("--crop", type=non_negative_int, default=None,
                   help="border pixels left out of PSNR/SSIM (default: the scale)")
    p.add_argument("--save-dir", help="write the upscaled images here (default: not written)")
    p.add_argument("--csv", help="write per-image rows here ('-': standard output)")
    p.add_argument("--tile", type=tile_side, default=None,
                   help="run a dynamic model in exact LR tiles of this size, to bound memory "
                        "on large images (default: whole images)")
    _add_json(p, "one record per data set")
    _add_quiet(p)
    _add_cache_dir(p)
    p.add_argument("--jobs", type=positive_int, default=None,
                   help="threads scoring/saving while the model runs (default: cores, max 2)")
    p.set_defaults(func=cmd_eval)
    return p


def _add_bench_parser(sub) -> argparse.ArgumentParser:
    # Options shared by several runners live here, with dests that are the runners'
    # constructor keywords; each runner's own options come from its add_cli_options.
    p = sub.add_parser("bench", help="time a TFLite model on a runner",
                       epilog=_examples("mai-sr bench --pretrained abpn --json > bench.json",
                                        "mai-sr bench model.tflite --runner adb --delegate nnapi "
                                        "--serial all"))
    _add_tflite_model(p, "fixed")
    p.add_argument("--runner", choices=tuple(RUNNERS), default="local",
                   help="where to time: local = this machine's CPU (LiteRT), adb = an Android "
                        "device, synap = a VS680 simulator, vela = Arm Vela's Ethos-U estimate "
                        "(default %(default)s)")
    p.add_argument("--threads", type=positive_int, default=2,
                   help="CPU threads of the local and adb runners (default %(default)s)")
    p.add_argument("--runs", dest="min_runs", metavar="RUNS", type=positive_int, default=None,
                   help="minimum timed runs (default: the runner's; local 50)")
    p.add_argument("--warmup", dest="warmup_runs", metavar="WARMUP", type=non_negative_int,
                   default=None, help="warmup runs (default: the runner's; local 1)")
    p.add_argument("--min-seconds", type=positive_float, default=None,
                   help="minimum timed seconds (default: the runner's; local 1)")
    _add_json(p, "the result (a list for several devices)")
    p.add_later(_add_runner_options)
    p.set_defaults(func=cmd_bench)
    return p


def _add_runner_options(parser: argparse.ArgumentParser) -> None:
    """One argument group per runner in RUNNERS, filled by its class's add_cli_options."""
    from mai_sr.device.options import add_runner_option_groups

    add_runner_option_groups(parser)


def _add_push_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("push", help="copy a model to AI Benchmark's custom-model slot on a device",
                       epilog=_examples("mai-sr push model.tflite --serial VS680EVK01",
                                        "mai-sr push --pretrained scsrn --serial all"))
    _add_tflite_model(p, "fixed")
    p.add_later(_add_push_options)
    p.set_defaults(func=cmd_push)
    return p


def _add_push_options(parser: argparse.ArgumentParser) -> None:
    """--adb and --serial as `bench --runner adb` declares them; --serial says what push does
    with every device (copies, where bench times)."""
    from mai_sr.device.adb import add_device_options

    group = parser.add_argument_group("adb (Android device)")
    add_device_options(group)
    for action in group._group_actions:
        if action.dest == "serial":
            action.help = ("device serial; 'all' copies the model to every attached device "
                           "(default: the one device attached)")


def _add_synap_parser(sub) -> argparse.ArgumentParser:
    example = "mai-sr synap convert --model model.tflite --out-dir synap_out"
    p = sub.add_parser("synap", help="SyNAP toolkit simulator (VS680 NPU): convert",
                       epilog=_examples(example))
    ssub = p.add_subparsers(dest="synap_command", metavar="SUBCOMMAND", parser_class=Parser)
    ssub.required = True
    c = ssub.add_parser("convert", help="validate and compile a TFLite model (simulated)",
                        epilog=_examples(example, "mai-sr bench model.tflite --runner synap"))
    c.add_argument("--model", required=True, help=".tflite file")
    c.add_argument("--target", default="VS680", help="target SoC (default VS680, the only one)")
    c.add_argument("--out-dir", required=True,
                   help="folder for model.synap and model_info.txt (error.log if refused)")
    c.add_argument("--meta", help="SyNAP meta.yaml (accepted, recorded)")
    c.set_defaults(func=cmd_synap)
    return p


def _add_lint_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("lint", help="check a TFLite model against what the NPU accepts",
                       epilog=_examples("mai-sr lint model.tflite",
                                        "mai-sr lint u85.tflite --target ethos-u85 --json"))
    p.add_argument("model", help=".tflite file")
    _add_json(p, "the report (with the exit code)")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings (default: exit 0)")
    p.add_argument("--wide", action="store_true",
                   help="every column (inputs, weights, quantization), unwrapped (default: fit "
                        "the terminal)")
    p.add_argument("--target", choices=lint_targets(), default=None,
                   help="one target's verdicts; ethos-u* compiles with Vela and reports the ops "
                        "it leaves on the CPU (default: the target the file was exported for, "
                        "else the VS680 and NNAPI columns)")
    p.set_defaults(func=cmd_lint)
    return p


def _add_profile_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("profile", help="params, MACs, activations, #conv, memory of a model",
                       epilog=_examples("mai-sr profile --model abpn --size 360x640",
                                        "mai-sr profile --model scsrn --scale 4 --json"))
    p.add_argument("--model", choices=list_models(), required=True, help="architecture")
    p.add_argument("--scale", type=int, choices=SCALES, default=3,
                   help="upscaling factor (default %(default)s)")
    p.add_argument("--size", type=size_hw, default=(256, 256),
                   help="LR input HxW (default 256x256)")
    p.add_argument("--train-graph", action="store_true",
                   help="profile the training graph (default: the deploy graph)")
    _add_json(p, "the profile")
    p.set_defaults(func=cmd_profile)
    return p


def _add_score_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("score", help="challenge score 2^(2*PSNR) / (C*runtime)",
                       epilog=_examples("mai-sr score --psnr 30.03 --runtime-ms 19.2 --challenge",
                                        "mai-sr score --psnr 27.6 --data Set14 --runtime-from "
                                        "bench.json"))
    p.add_argument("--psnr", type=float, help="PSNR in dB")
    p.add_argument("--runtime-ms", type=positive_float, help="runtime in ms")
    p.add_argument("--runtime-from", help="bench --json output to take the runtime from "
                   "('-': standard input)")
    p.add_argument("--csv", help="CSV with psnr and runtime_ms columns: score every row "
                   "('-': standard input)")
    p.add_argument("--data", help="data set the PSNR is on (challenge = the challenge's DIV2K "
                   "test set); default unstated: said in the output")
    p.add_argument("--device", help="where --runtime-ms was measured (vs680 = the challenge's "
                   "Synaptics VS680 NPU); default unstated: said in the output")
    p.add_argument("--scale", type=int, choices=SCALES,
                   help="the model's scale (default: the bench file's model, else 3)")
    p.add_argument("--input", type=size_hw, metavar="HxW",
                   help="LR input the runtime was timed at (default: the scale's timing input)")
    p.add_argument("--challenge", action="store_true",
                   help="the PSNR is on the challenge's test set and the runtime from its VS680 "
                   "(= --data challenge --device vs680)")
    _add_json(p, "the score (with caveats and C)")
    p.set_defaults(func=cmd_score)
    return p


def _add_report_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("report", help="leaderboard, plots and HTML for runs and models",
                       epilog=_examples("mai-sr report --pretrained abpn ncnet --data Set14",
                                        "mai-sr report runs/latest --tflite model.tflite",
                                        "mai-sr report a.tflite --runner vela --npu ethos-u65-512"))
    p.add_argument("inputs", nargs="*", help="run folders, .tflite files, shipped names (abpn)")
    p.add_argument("--pretrained", nargs="+", action="extend", default=[], metavar="NAME",
                   help=f"shipped models: {PRETRAINED_HELP} (default none)")
    p.add_argument("--tflite", action="append", default=[], metavar="FILE",
                   help="your export of a run given, scored instead of its export/ (default none)")
    p.add_argument("--data", default="builtin",
                   help="DIR[,DIR], builtin, or folder names under $MAI_SR_DATA (e.g. Set14,B100);"
                        " the first is the leaderboard's PSNR (default builtin)")
    # make_report checks the names against RUNNERS too (its message names all unknown ones)
    p.add_argument("--runner", type=csv_list, default=["local", "synap", "sim"],
                   metavar=f"{{{','.join(RUNNERS)}}}[,...]",
                   help="local = CPU ms, synap/adb = NPU ms, sim = estimates per device "
                        "profile (default local,synap,sim)")
    p.add_argument("--out", default="report",
                   help="report folder; its cache/ makes reruns cheap (default %(default)s)")
    _add_quiet(p)
    _add_cache_dir(p)
    p.add_later(_add_runner_options)  # each runner's own options, as for bench
    p.set_defaults(func=cmd_report)
    return p


def _add_upscale_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("upscale", help="upscale images with a TFLite model, by its scale "
                       "(any size, tiled)",
                       epilog=_examples("mai-sr upscale photo.png photo_x3.png --pretrained ncnet",
                                        "mai-sr upscale photos/ photos_x3/ --model "
                                        "model_none.tflite --format webp"))
    p.add_argument("input", help="image file or folder")
    p.add_argument("output", help="output file or folder")
    p.add_argument("--model", help=".tflite file (or --pretrained)")
    p.add_argument("--pretrained", choices=PRETRAINED_NAMES, metavar="NAME",
                   help=f"a shipped model's dynamic-shape file, instead of --model: "
                        f"{PRETRAINED_HELP}")
    p.add_argument("--tile", type=tile_side, default=None,
                   help="LR tile side, at most 2048 (default: the model's fixed input, or none)")
    _add_quiet(p)
    p.add_argument("--format", choices=LibraryChoices("mai_sr.fileio", "FORMATS"), default=None,
                   help="write every output in this format (default: the input's extension)")
    p.add_argument("--png-level", type=non_negative_int, default=1,
                   help="PNG zlib level 0-9, lossless at every level (default 1: fast)")
    p.add_argument("--quality", type=positive_int, default=95,
                   help="JPEG/WebP quality 1-100 (default 95)")
    p.add_argument("--jobs", type=positive_int, default=None,
                   help="threads encoding while the model runs (default: cores, max 2)")
    p.add_argument("--max-pixels", type=non_negative_int, default=178_956_970,
                   help="refuse inputs above this many pixels, a guard against decompression "
                        "bombs (default 178956970, Pillow's; 0: no limit)")
    p.set_defaults(func=cmd_upscale)
    return p


def _add_import_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("import", help="published weights (.pth/.pt, SavedModel, .h5/.keras, "
                       ".tflite) -> deploy-graph weights for export --weights and QAT",
                       epilog=_examples("mai-sr import ABPN_M4C28_x3.pth --model abpn --out "
                                        "abpn.weights.h5",
                                        "mai-sr import ECBSR_M4C32_x3.pth --model "
                                        "ecbsr_m4c32_relu_pair --out ecbsr.weights.h5",
                                        "mai-sr export abpn.tflite --model abpn --weights "
                                        "abpn.weights.h5"))
    p.add_argument("source", help="PyTorch checkpoint, SavedModel folder, Keras file or .tflite")
    p.add_argument("--model", choices=MODEL_NAMES, default=None,
                   help="target architecture (default: recognised from a PyTorch state dict "
                        "of ESPCN, FSRCNN, ECBSR, ABPN or ETDS; needed for other files); a "
                        "layout option of the recognised one (ecbsr_m4c32_relu_pair) rewrites "
                        "it and checks that both compute the same")
    p.add_argument("--scale", type=int, choices=SCALES, default=None,
                   help="upscaling factor, for weights that do not hold it (FSRCNN's stride; "
                        "default: measured on the sanity gate)")
    p.add_argument("--out", default=None,
                   help="output NAME.weights.h5 (default: check only, write nothing); its "
                        "record NAME.weights.h5.json is written with it")
    p.add_argument("--force", action="store_true",
                   help="replace an existing output and its record (default: refuse)")
    p.add_argument("--channel-order", default="auto",
                   choices=LibraryChoices("mai_sr.importer.core", "CHANNEL_ORDER_CHOICES"),
                   help="depth-to-space order of the source's last conv (default auto: the "
                        "framework's, crd for PyTorch PixelShuffle, dcr for TF)")
    p.add_argument("--input-range", default="auto",
                   choices=LibraryChoices("mai_sr.importer.core", "INPUT_RANGE_CHOICES"),
                   help="pixel range the source was trained on (default auto: measured on "
                        "--gate-data)")
    p.add_argument("--gate-data", default="builtin",
                   help="images of the sanity gate (default builtin: scikit-image's photos)")
    _add_json(p, "the import's result")
    p.set_defaults(func=cmd_import)
    return p


def _add_models_parser(sub) -> None:
    p = sub.add_parser("models", help="the architectures and the named weights (shipped and "
                       "fetchable), with their source, licence and published figures",
                       epilog=_examples("mai-sr models", "mai-sr models --scale 3 --json"))
    p.add_argument("--scale", type=int, choices=SCALES, default=None,
                   help="only weights of this scale (default: all)")
    _add_json(p, "the architectures and weights")
    p.set_defaults(func=cmd_models)
    return p


def _add_fetch_parser(sub) -> None:
    p = sub.add_parser("fetch", help="download named zoo weights, check their sha256, cache "
                       "and import them (then --weights/--teacher/--from NAME)",
                       epilog=_examples("mai-sr fetch etds_l.etds_div2k",
                                        "mai-sr fetch abpn.etds_div2k_x2 --base "
                                        "../shared/artifacts/etds_zoo/pretrained"))
    p.add_argument("names", nargs="+", metavar="NAME", help="weights names (mai-sr models)")
    p.add_argument("--base", default=None,
                   help="mirror to download from: URL or folder holding FAMILY/NAME.pth "
                        "(default: $MAI_SR_WEIGHTS_URL, else each weight's public URL)")
    p.add_argument("--import", dest="import_", action=argparse.BooleanOptionalAction,
                   default=None, help="also import into the cache as deploy weights; "
                   "--no-import only downloads and checks (default: on)")
    p.set_defaults(func=cmd_fetch)
    return p


def _add_train_parser(sub) -> argparse.ArgumentParser:
    p = add_train_parser(sub)  # the longest option list: mai_sr.cli_train
    p.set_defaults(func=cmd_train)
    return p


SUBCOMMAND_BUILDERS = (_add_train_parser, _add_export_parser, _add_eval_parser,
                       _add_bench_parser, _add_push_parser, _add_synap_parser, _add_lint_parser,
                       _add_profile_parser, _add_score_parser, _add_report_parser,
                       _add_upscale_parser, _add_import_parser, _add_models_parser,
                       _add_fetch_parser)


def build_parser() -> argparse.ArgumentParser:
    """The `mai-sr` parser: one subparser per command, each made by its builder."""
    parser = Parser(prog=PROG, description="Quantized super-resolution (x2, x3, x4) for mobile "
                     "NPUs: train, QAT, export INT8 TFLite,\nlint, evaluate, benchmark, score.",
                     epilog=_examples("mai-sr train --model abpn --qat",
                                      "mai-sr export model.tflite --run runs/latest",
                                      "mai-sr eval model.tflite && mai-sr bench model.tflite"))
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for add_subcommand in SUBCOMMAND_BUILDERS:
        add_subcommand(sub)
    return parser


def _one_line_warning(command: str):
    """A `warnings.showwarning` that says a library's warning (a skipped image, a file read
    only up to its first frame) in one line, ``mai-sr <cmd>: warning: ...``, without
    Python's file, line and source."""
    def show(message, category, filename, lineno, file=None, line=None):
        # A dependency's deprecation notice (TF's use of distutils, say) speaks to that
        # dependency's developers, not to the user of a command: Python hides these outside
        # tests, and a test run's filters must not turn them into the command's output.
        if issubclass(category, (DeprecationWarning, PendingDeprecationWarning)):
            return
        print(f"{PROG} {command}: warning: {message}", file=sys.stderr if file is None else file)
    return show


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` (default ``sys.argv[1:]``) and run the command; return the exit code.

    Tests call this in-process; the console script is :func:`mai_sr.__main__.run`."""
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.exit(2, f"{PROG}: error: give a command, e.g. `{PROG} train --model abpn "
                       f"--qat`; `{PROG} --help` lists them\n")
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():  # restored on return: main() is also called in-process
            warnings.showwarning = _one_line_warning(args.command)
            return int(args.func(args) or 0)
    except MaiSrError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error of ours.
        sys.stderr.close()
        return 0
    except OSError as exc:
        # An OS failure that no library call named more precisely (a full disk or a
        # read-only folder somewhere deep in TF or Pillow): still one line, never a traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{PROG} {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return MaiSrError.exit_code


if __name__ == "__main__":
    sys.exit(main())
