"""Models: training samples, LightGBM, calibration, class policy, evaluation, the package and its registry."""
