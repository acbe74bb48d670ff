"""`farfeed demo`: what the distance costs, measured on this machine in a coffee break.

    outcome = run_demo(DemoSpec(out=Path("demo-out")), console=Console())
    outcome = run_demo(DemoSpec.quick(link="transpacific"), console=Console())

Makes sample images and text and packs them (the storage site), starts `farfeed serve`
and `farfeed wan` (the ``--link`` preset) as their own processes, then runs three jobs,
one progress line each:

- a small ResNet and a small Llama trained local / near (0 ms) / remote (interleaved
  rounds, same seed and steps): the PoC's two jobs, scaled to 2 CPU cores;
- the data-bound job (`farfeed.bench.io.databound`): the PoC's ResNet-50 data demand
  scaled to this machine, an emulated accelerator at 0.9 of a scaled link, real JPEGs
  decoded as in training, fed by one GET per file (what most users run) and by farfeed,
  at 0, 15 and 100 ms (and the link's RTT).

The headline puts the cost from stalls first and the wall-time ratio beside it with its
noise band (`farfeed.bench.train.headline`); the report states the machine's load
(`load.LoadWatch`). Writes report.md, results.json and the plots to the output folder.
"""

from farfeed.bench.demo.run import TITLE, DemoOutcome, run_demo
from farfeed.bench.demo.spec import JOBS, DemoSpec

__all__ = ["JOBS", "TITLE", "DemoOutcome", "DemoSpec", "run_demo"]
