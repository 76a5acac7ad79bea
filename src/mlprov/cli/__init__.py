"""The command line: click commands, one module per command group; the only place that prints."""
