"""Built-in method plugins (installed as ``denoise_bench.methods``), one module per method."""
