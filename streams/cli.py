"""`engage`: the one console script. Misuse prints usage and exits 2, never a traceback."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from sinks.argtypes import positive_int
from streams import kafka_security
from streams.settings import DEFAULT_BROKER


class UsageError(Exception):
    """A problem with how the command was called or what it was given (exit 2)."""


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        default=os.environ.get("ENGAGE_CONFIG"),
        help="rules file (TOML); default $ENGAGE_CONFIG or the built-in defaults",
    )


def _broker_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--broker",
        default=None,
        help=f"Kafka bootstrap servers (default $KAFKA_BOOTSTRAP_SERVERS or {DEFAULT_BROKER})",
    )
    kafka_security.add_arguments(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="engage",
        description="Stream-processing engagement scorer: Kafka events in; scores, churn "
        "probabilities and triggers out.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("broker", help="run the local Apache Kafka broker (KRaft, 127.0.0.1)")
    p.add_argument("action", choices=["up", "down", "status", "reset"])
    p.add_argument("--port", type=positive_int, default=None, help="client port (default 9092)")
    p.add_argument("--sasl", action="store_true", help="also a SASL/SCRAM listener on port+2")
    p.add_argument("--tls", action="store_true", help="also SASL_SSL (port+3), mTLS (port+4)")
    p.set_defaults(func=cmd_broker)

    from streams import topics_command, worker_command

    p = sub.add_parser("topics", help="create every topic with its partitions and configs")
    _broker_arg(p)
    topics_command.add_arguments(p)
    p.set_defaults(func=topics_command.run)

    p = sub.add_parser("worker", help="start the Faust worker (every option also from env)")
    _broker_arg(p)
    worker_command.add_arguments(p)
    p.set_defaults(func=worker_command.run)

    p = sub.add_parser("simulate", help="synthetic traffic to a JSONL file or a topic")
    from simulator.cli import add_arguments as simulate_arguments

    simulate_arguments(p)
    kafka_security.add_arguments(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("replay", help="run a JSONL(.gz) event file through the engine offline")
    p.add_argument("input", help="events, one JSON object per line (.gz allowed)")
    _config_arg(p)
    p.add_argument("--snapshot", help="write one JSON line per user here")
    p.add_argument("--triggers", help="write the emitted triggers here (JSONL)")
    p.add_argument("--as-of", help="evaluate at this event time (RFC 3339 or epoch ms)")
    p.add_argument(
        "--partitions", type=positive_int, default=None,
        help="place users on this many partitions, as the live input topic does (default: "
        "the live topic's count when --broker is given, else 4)",
    )
    p.add_argument("--broker", default=None,
                   help="read the partition count of the live input topic from this broker")
    p.add_argument("--topic-prefix", default=os.environ.get("ENGAGE_TOPIC_PREFIX", ""),
                   help="as given to the worker (default $ENGAGE_TOPIC_PREFIX)")
    p.add_argument("--refresh", action="store_true",
                   help="run the periodic score refresh (scoring.refresh_every_hours) even "
                   "without --snapshot/--triggers, e.g. for trigger counts equal to a worker's")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser(
        "model", help="list, swap, shadow, promote or roll back churn models (live)"
    )
    p.add_argument("action", choices=["list", "swap", "shadow", "promote", "rollback"])
    p.add_argument("name", nargs="?", help="model name (swap, shadow); version (rollback: "
                   "default the one before the champion)")
    _broker_arg(p)
    p.add_argument("--timeout", type=float, default=15.0)
    p.add_argument("--topic-prefix", default=None, help="as given to the worker (default "
                   "$ENGAGE_TOPIC_PREFIX, else none, else a running demo's)")
    p.set_defaults(func=cmd_model)

    p = sub.add_parser("config", help="check a rules file and print the effective settings")
    p.add_argument("action", choices=["check", "show"])
    p.add_argument("file", nargs="?")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("webhook", help="deliver trigger topics to an HTTP endpoint (signed)")
    from streams.webhook_cli import add_arguments as webhook_arguments

    webhook_arguments(p)
    kafka_security.add_arguments(p)
    p.set_defaults(func=cmd_webhook)

    p = sub.add_parser("watch", help="print scores and triggers as they arrive")
    _broker_arg(p)
    p.add_argument("--seconds", type=float, default=None, help="stop after this long")
    p.add_argument("--scores", action="store_true", help="also print every score update")
    p.add_argument("--all", action="store_true", help="print every trigger, not the notable")
    p.add_argument("--every", type=float, default=10.0, help="seconds between summary lines")
    p.add_argument("--topic-prefix", default=None, help="as given to the worker (default "
                   "$ENGAGE_TOPIC_PREFIX, else none, else a running demo's)")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser(
        "demo",
        help="the main job: local broker, worker, live simulated traffic, live scores/triggers",
    )
    p.add_argument("--users", type=positive_int, default=300)
    p.add_argument(
        "--speed",
        type=float,
        default=3600.0,
        help="simulated seconds per wall second (default 3600: an hour a second)",
    )
    p.add_argument("--seconds", type=float, default=None, help="stop after this long")
    p.add_argument("--metrics-port", type=positive_int, default=9464)
    p.add_argument("--web-port", type=positive_int, default=6066)
    p.set_defaults(func=cmd_demo)

    from streams import backtest as backtest_cli  # churn backtest (issue #11)
    from streams import report_cli, uplift_cli, whatif_cli  # offline growth tools (issue #14)

    for command in (uplift_cli, report_cli, whatif_cli, backtest_cli):
        p = sub.add_parser(command.NAME, help=command.HELP, description=command.HELP)
        command.add_arguments(p)
        p.set_defaults(func=command.run)
    return parser


def _broker(args: argparse.Namespace) -> str:
    return kafka_security.connection_from_args(args).bootstrap


def _client(args: argparse.Namespace) -> dict[str, object]:
    """kafka-python security settings for a side tool (flags, env, --kafka-config)."""
    return kafka_security.connection_from_args(args).security.client_settings()


def cmd_broker(args: argparse.Namespace) -> int:
    from deploy.local_kafka import main as broker_main

    argv = [args.action] + (["--port", str(args.port)] if args.port else [])
    argv += ["--sasl"] * args.sasl + ["--tls"] * args.tls
    return broker_main(argv)


def _load_config(path: str | None):  # type: ignore[no-untyped-def]
    from scoring.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    except FileNotFoundError:
        raise UsageError(f"config file not found: {path}") from None


def cmd_simulate(args: argparse.Namespace) -> int:
    from simulator.cli import run as simulate_run

    if args.topic:
        args.broker, args.producer_config = _broker(args), _client(args)
    return int(simulate_run(args))


def cmd_replay(args: argparse.Namespace) -> int:
    from scoring.timeutil import parse_rfc3339_ms
    from streams.replay import DEFAULT_PARTITIONS, run_replay

    config = _load_config(args.config)
    if not os.path.exists(args.input):
        raise UsageError(f"input file not found: {args.input}")
    as_of: int | None = None
    if args.as_of:
        try:
            as_of = int(args.as_of) if args.as_of.isdigit() else parse_rfc3339_ms(args.as_of)
        except ValueError:
            raise UsageError(
                f"--as-of {args.as_of!r} is neither RFC 3339 with an offset nor epoch ms"
            ) from None
    partitions = args.partitions
    if partitions is None:
        partitions = DEFAULT_PARTITIONS
        if args.broker:
            from streams.topics import TopicNames, input_partitions

            live = input_partitions(args.broker, TopicNames(prefix=args.topic_prefix))
            if live is None:
                raise UsageError(f"no input topic on {args.broker}; give --partitions")
            partitions = live
    result = run_replay(
        args.input,
        config,
        as_of=as_of,
        snapshot_path=args.snapshot,
        triggers_path=args.triggers,
        progress=not args.no_progress,
        partitions=partitions,
        # the refresh only makes score records: worth it when something is written
        refresh=bool(args.refresh or args.snapshot or args.triggers),
    )
    import gc
    import json

    print(json.dumps(result.summary, indent=2, sort_keys=True))
    # the process ends with the replay: its objects out of the collector's reach, so the
    # interpreter's last collection does not walk every user's state (0.4-0.6 s at 3k users)
    gc.freeze()
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    from streams.model_control import run_model_command

    if args.action in ("swap", "shadow") and not args.name:
        raise UsageError(f"engage model {args.action} needs a model NAME (see: engage model list)")
    from streams.topic_prefix import resolve_prefix
    from streams.topics import TopicNames

    client = _client(args)
    prefix = resolve_prefix(_broker(args), args.topic_prefix, lambda n: n.churn_control, client)
    names = TopicNames(prefix=prefix)
    if args.action == "rollback":
        if args.name is not None and not args.name.isdigit():
            raise UsageError(f"engage model rollback takes a VERSION number, not {args.name!r}")
        version = int(args.name) if args.name else None
        return run_model_command(_broker(args), "rollback", None, args.timeout, names, version,
                                 client=client)
    return run_model_command(_broker(args), args.action, args.name, args.timeout, names,
                             client=client)


def cmd_config(args: argparse.Namespace) -> int:
    import json

    import msgspec

    from scoring.triggers.config import to_builtins as triggers_as_written

    config = _load_config(args.file)
    if args.action == "check":
        print(f"{args.file or 'built-in defaults'}: ok")
    else:
        shown = msgspec.to_builtins(config)
        shown["triggers"] = triggers_as_written(config.triggers)
        print(json.dumps(shown, indent=2, sort_keys=True))
    return 0


def cmd_webhook(args: argparse.Namespace) -> int:
    from streams.webhook_cli import run as webhook_run

    args.broker, args.kafka_client = _broker(args), _client(args)
    return webhook_run(args)


def cmd_watch(args: argparse.Namespace) -> int:
    from streams.topic_prefix import resolve_prefix
    from streams.topics import TopicNames
    from streams.watch import watch

    client = _client(args)
    prefix = resolve_prefix(_broker(args), args.topic_prefix, lambda n: n.audit, client)
    return watch(_broker(args), seconds=args.seconds, show_scores=args.scores,
                 names=TopicNames(prefix=prefix), every_s=args.every, show_all=args.all,
                 client=client)


def cmd_demo(args: argparse.Namespace) -> int:
    from streams.demo import run_demo

    return run_demo(
        users=args.users,
        speed=args.speed,
        seconds=args.seconds,
        metrics_port=args.metrics_port,
        web_port=args.web_port,
    )


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            chosen: argparse.ArgumentParser = action.choices[command]
            return chosen
    return parser


# BLAS libraries read their thread count once, when numpy/scipy first load them.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def single_threaded_blas() -> None:
    """One BLAS thread unless the environment says otherwise (call before numpy loads).

    The only BLAS work here is tiny: L-BFGS-B's LAPACK calls on 4 parameters in every
    BG/NBD refit. Pool threads wake and spin for each of them; measured on `engage
    backtest` CDNOW_sample on 2 cores, they were 2/3 of the CPU time. Numerically the same:
    no call here splits a sum between threads (the output is byte-identical)."""
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")


def main(argv: Sequence[str] | None = None) -> int:
    single_threaded_blas()
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    from simulator.cli import UsageError as SimulatorUsageError
    from streams.topics import TopicPolicyError

    try:
        return func(args)
    except (UsageError, SimulatorUsageError, kafka_security.KafkaSecurityError,
            TopicPolicyError) as exc:
        _subparser(parser, args.command).print_usage(sys.stderr)
        parser.exit(2, f"engage {args.command}: error: {exc}\n")
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `engage report FILE | head`: the reader has gone
        sys.stderr.close()
        return 0
    except Exception as exc:  # last resort: one clear line, not a traceback
        from kafka.errors import KafkaError

        if isinstance(exc, KafkaError):
            parser.exit(
                1,
                f"engage {args.command}: cannot reach Kafka at {_broker(args)}: {exc}\n"
                "(start the local broker with: engage broker up; on a secured cluster check "
                "the Kafka security settings: engage COMMAND --help)\n",
            )
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
