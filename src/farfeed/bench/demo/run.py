"""`run_demo`: make the data, start the sites, run each job with a progress line, write the report."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass
from typing import Any

from farfeed.bench.demo.load import LoadWatch
from farfeed.bench.demo.report import AU_PLOT, console_headline, head_blocks
from farfeed.bench.demo.spec import DemoSpec
from farfeed.bench.train.headline import stall_cell, wall_cell
from farfeed.bench.train.session import TrainSession
from farfeed.bench.train.sites import NEAR, REMOTE
from farfeed.bench.train.spec import TrainBenchSpec

TITLE = "farfeed demo: the distance, measured on this machine"


@dataclass
class DemoOutcome:
    """What the demo produced: the training results, the data-bound rows, the report, and
    how long it took."""

    results: list[dict[str, Any]]
    data_bound: list[dict[str, Any]]
    report: Any
    seconds: float


def run_demo(
    spec: DemoSpec, *, console: Any, progress: bool = True, command: str = "farfeed demo"
) -> DemoOutcome:
    """Run the whole demo (see `farfeed.bench.demo`) and print the headline."""
    from farfeed.wan import Link

    started = time.perf_counter()
    link = Link.from_preset(spec.link)
    bound: list[dict[str, Any]] = []
    setup: dict[str, Any] | None = None
    with LoadWatch() as load, TrainSession(spec.out, console=console, progress=progress) as session:
        session.log(f"storage site: {session.storage}")
        datasets = session.sample_data(
            spec.workloads, images=spec.images, text_bytes=spec.text_bytes, seed=spec.seed
        )
        links = (
            {NEAR: link.with_(rtt=0.0, jitter=0.0, loss=0.0), REMOTE: link}
            if spec.workloads
            else {}
        )
        session.log(f"starting the gateway over {session.storage} and the emulated links")
        sites = session.open_sites(links=links)
        for number, job in enumerate(spec.jobs, 1):
            began = time.perf_counter()
            if job == "data-bound":
                bound, setup = _data_bound(session, spec, link, sites)
                line = "AU rel. to 0 ms " + ", ".join(
                    f"{r['loader']} {r['rtt_ms']:g} ms {r['au_relative']:.2f}"
                    for r in bound
                    if r["rtt_ms"]
                )
            else:
                result = session.run(
                    TrainBenchSpec(
                        config=spec.config(job),
                        dataset=datasets[job],
                        link_name=spec.link,
                        link=link,
                        rounds=spec.rounds,
                        workdir=session.workdir(job),
                        checkpoints=spec.checkpoints,
                        schedule=spec.schedule,
                    ),
                    sites=sites,
                )
                line = (
                    f"cost from stalls {stall_cell(result, short=True)}; "
                    f"wall time {wall_cell(result, short=True)}"
                )
            minutes = (time.perf_counter() - began) / 60
            console.print(
                f"[{number}/{len(spec.jobs)}] {job} done in {minutes:.1f} min: {line}", markup=False
            )
    seconds = time.perf_counter() - started
    figures = load.summary()
    if bound:
        try:
            from farfeed.bench.io.plots import save_au_figure

            save_au_figure(bound, session.out / AU_PLOT, setup=setup)
        except ImportError:  # matplotlib is optional (`farfeed[bench]`)
            pass
    title = f"{TITLE} ({spec.link}, {link.rtt * 1000:g} ms)"
    console.print(console_headline(session.results, bound, setup, figures, title=title))
    report = session.report(
        title=TITLE,
        command=command,
        table_title=f"details: the PoC's table on this machine ({spec.link})",
        extra={
            "demo_seconds": seconds,
            "data_bound": bound,
            "data_bound_setup": setup,
            "load": figures,
            "demo": _spec_dict(spec),
        },
        head=head_blocks(session.results, bound, setup, figures),
    )
    console.print(
        f"report: {report}  (plots and results.json beside it); took {seconds / 60:.1f} min"
    )
    return DemoOutcome(results=session.results, data_bound=bound, report=report, seconds=seconds)


def _data_bound(
    session: TrainSession, spec: DemoSpec, link: Any, sites: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The data-bound job on the running gateway, one progress step per trial."""
    from farfeed.bench.io.databound import run_data_bound

    bound = dataclasses.replace(spec.bound, rtts_ms=spec.bound_rtts_ms(link.rtt))
    session.log(
        f"data-bound job: {bound.images} JPEGs as files and shards under {session.storage}; "
        f"RTTs {', '.join(f'{r:g}' for r in bound.rtts_ms)} ms"
    )
    advance = session.task("data-bound", total=2 * len(bound.plan()))
    return run_data_bound(
        bound,
        root=session.storage,
        gateway=sites.gateway,
        base_link=link,
        on_trial=lambda row: advance(f"{row['loader']} {row['rtt_ms']:g} ms AU {row['au']:.2f}"),
    )


def _spec_dict(spec: DemoSpec) -> dict[str, Any]:
    out = asdict(spec)
    out["out"] = str(spec.out)
    return out
