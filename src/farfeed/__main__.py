"""`python -m farfeed`: the same as the `farfeed` command."""

from farfeed.cli import main

main()
