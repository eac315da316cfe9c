"""Built-in dataset plugins (installed as ``denoise_bench.datasets``)."""
