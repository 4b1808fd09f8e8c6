"""Oracle 2D priors from a scene's ground truth, with corruption knobs that mimic real 2D models.

The oracle replaces SAM, SAM2 and CLIP on scenes with ground truth (synthetic rooms, annotated datasets):
masks come from GT instances (parts and subparts by splitting instances in 3D), tracks from GT ids, language
features from a fixed "oracle embedding space" in which every category name has one unit vector and the text
encoder uses the same map. Every store written from an oracle says so (attribute ``oracle: true``); results
obtained with oracle priors measure the 3D stages given 2D priors of a known quality, not the 2D models.
"""
