"""The `pmoe` command line: parse options, show progress, print. The science lives in pmoe_core."""
