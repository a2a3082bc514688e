"""Layer 2, the physics: 3GPP TR 38.901 path loss and ITU-R P.838/P.676 attenuation and the
link budget (``propagation``), drawing links over the domain (``sampling``), the physics rules
a prediction must keep (``rules``) and the oracle (noise-floor) predictor (``oracle``)."""
