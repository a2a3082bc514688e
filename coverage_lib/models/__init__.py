"""Layer 4, the models: the neural backbones (CoverageMLP, the primary; CoverageMamba3, the
physics backup, with its law head), the normalisation they share, the tuned LightGBM baseline,
and the registry that names every backbone for the layers above."""
