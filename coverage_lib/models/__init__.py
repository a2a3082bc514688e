"""Neural backbones: CoverageMLP (primary) and CoverageMamba3 (physics backup)."""
