"""The Boltzmann family (math only): Hopfield networks, Boltzmann machines, RBMs, DBNs, DBMs and
sigmoid belief nets; import the modules (`from gen_jax.boltzmann import rbm`)."""
