"""Sub-commands of ``crossnet-fast`` (one module each; see crossnet_fast/cli.py)."""
