"""Built-in noise plugins (installed as ``denoise_bench.noises``), one module per kind of noise."""
