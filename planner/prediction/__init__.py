"""The difficulty predictor: text features, the estimator, shipped models, training and metrics."""
