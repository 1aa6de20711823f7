"""Every figure dlexp draws, one function per kind, each returning a matplotlib Figure: the
TensorBoard hooks turn it into an image (dlexp/plots.py), `dlexp.report` saves it as a PNG.
One style (style.py) holds for both, so a figure reads the same wherever it is shown.

classification.py  confusion matrix, ROC curves, sample predictions
regression.py      predicted against true, forecast windows
training.py        learning curves
sweeps.py          a metric against a hyperparameter, the objective's curve per job
"""
