"""Weights in: reading checkpoint files of every format safely (:mod:`~htsr.weights.checkpoints`;
ONNX, Keras, GGUF and Flax files in :mod:`htsr.weights.formats`),
verified downloads (:mod:`~htsr.weights.download`), one module per source of the model table
(:mod:`htsr.weights.sources`, with the OSMR store's names in :mod:`~htsr.weights.osmr`), the
dispatch from a table row to its source (:mod:`~htsr.weights.zoo`), and :func:`htsr.analyze`
on a path (:mod:`~htsr.weights.analysis`)."""
