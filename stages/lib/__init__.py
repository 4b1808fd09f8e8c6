"""Library code shared by the stages: store contract, scenes, rendering, training, metrics."""
