"""farfeed.bench: the measurements behind docs/BENCHMARKS.md (`farfeed bench`, `demo`, `stream`)."""
