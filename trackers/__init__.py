"""Built-in trackers (installed as ``denoise_bench.trackers``): plugins of the lifecycle hooks that follow a run."""
