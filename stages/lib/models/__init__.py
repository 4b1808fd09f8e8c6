"""Wrappers over pretrained 2D models (SAM, SAM2, CLIP) that produce the per-view priors the 3D stages lift."""
