"""`python -m nodehost.tools` is the `nodehost` command."""

from nodehost.tools.cli import main

main()
