"""`python -m denoise_bench.cli`: the same as the `bench` command."""

from denoise_bench.cli.commands import main

main()
