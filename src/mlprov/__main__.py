from mlprov.cli.main import run

run()
