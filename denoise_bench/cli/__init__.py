"""The ``bench`` command: commands.py parses flags, prints and exits; request_options.py turns bench run's
options and request files into a request."""
