"""Family tasks: each wires a family's math and networks into the generic trainer and
exposes `train_and_evaluate(config, workdir)` for its launcher."""
